//! Roles, bans and mutes of a room (contract 1.1, "Roles and moderation"): who may do
//! what to whom. Pure rules; the sequencer applies them inside the room's commit, so
//! every node takes the same decision on the same stored state.

use crate::ids::UserId;
use crate::room::Control;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest ban or mute, in seconds (a year).
pub const MAX_MODERATION_SECS: i64 = 31_536_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// What one user asks to do to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    GiveRole,
    Kick,
    Mute,
}

/// The room's stored moderation: admins (the owner is the room's, never stored here),
/// and bans and mutes with the instant (ms) they end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Moderation {
    #[serde(default)]
    pub admins: BTreeSet<UserId>,
    #[serde(default)]
    pub bans: BTreeMap<UserId, i64>,
    #[serde(default)]
    pub mutes: BTreeMap<UserId, i64>,
}

impl Moderation {
    pub fn role(&self, owner: &UserId, user: &UserId) -> Role {
        if user == owner {
            Role::Owner
        } else if self.admins.contains(user) {
            Role::Admin
        } else {
            Role::Member
        }
    }

    /// When the user's ban ends, if it is still in force at `now_ms`.
    pub fn banned_until(&self, user: &UserId, now_ms: i64) -> Option<i64> {
        self.bans.get(user).copied().filter(|until| *until > now_ms)
    }

    /// When the user's mute ends, if it is still in force at `now_ms`.
    pub fn muted_until(&self, user: &UserId, now_ms: i64) -> Option<i64> {
        self.mutes
            .get(user)
            .copied()
            .filter(|until| *until > now_ms)
    }

    /// Forgets bans and mutes that have ended, so the stored record does not grow.
    pub fn prune(&mut self, now_ms: i64) {
        self.bans.retain(|_, until| *until > now_ms);
        self.mutes.retain(|_, until| *until > now_ms);
    }

    /// Sets (or lifts, with `None`) a ban.
    pub fn set_ban(&mut self, user: &UserId, until: Option<i64>) {
        match until {
            Some(until) => self.bans.insert(user.clone(), until),
            None => self.bans.remove(user),
        };
    }

    /// Sets (or lifts, with `None`) a mute.
    pub fn set_mute(&mut self, user: &UserId, until: Option<i64>) {
        match until {
            Some(until) => self.mutes.insert(user.clone(), until),
            None => self.mutes.remove(user),
        };
    }

    /// Gives `user` the role `admin` or `member`; the owner's role never changes.
    pub fn set_role(&mut self, user: &UserId, role: Role) {
        match role {
            Role::Admin => {
                self.admins.insert(user.clone());
            }
            Role::Member | Role::Owner => {
                self.admins.remove(user);
            }
        }
    }
}

/// Whether `actor` (with its role; `None` is the server itself) may do `act` to a user
/// whose role is `target`. The owner may do all of it to anyone but itself; an admin may
/// kick and mute members; no one acts on itself.
pub fn may(actor: Option<Role>, acting_on_self: bool, act: Act, target: Role) -> bool {
    if target == Role::Owner && actor.is_some() {
        return false;
    }
    match actor {
        None => act == Act::Kick || act == Act::Mute,
        Some(_) if acting_on_self => false,
        Some(Role::Owner) => true,
        Some(Role::Admin) => act != Act::GiveRole && target == Role::Member,
        Some(Role::Member) => false,
    }
}

/// Whether a user of `role` may change playback, media and the queue under `control`.
pub fn may_control(control: Control, role: Role) -> bool {
    match control {
        Control::Everyone => true,
        Control::Hosts => role != Role::Member,
        Control::Owner => role == Role::Owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_may_do_all_of_it_to_anyone_but_itself() {
        for act in [Act::GiveRole, Act::Kick, Act::Mute] {
            assert!(may(Some(Role::Owner), false, act, Role::Admin));
            assert!(may(Some(Role::Owner), false, act, Role::Member));
            assert!(!may(Some(Role::Owner), true, act, Role::Owner));
        }
    }

    #[test]
    fn an_admin_kicks_and_mutes_members_only() {
        assert!(may(Some(Role::Admin), false, Act::Kick, Role::Member));
        assert!(may(Some(Role::Admin), false, Act::Mute, Role::Member));
        assert!(!may(Some(Role::Admin), false, Act::GiveRole, Role::Member));
        assert!(!may(Some(Role::Admin), false, Act::Kick, Role::Admin));
        assert!(!may(Some(Role::Admin), false, Act::Kick, Role::Owner));
        assert!(!may(Some(Role::Admin), true, Act::Mute, Role::Admin));
    }

    #[test]
    fn members_may_not_moderate_and_the_server_may_kick_anyone_but_the_owner() {
        assert!(!may(Some(Role::Member), false, Act::Kick, Role::Member));
        assert!(may(None, false, Act::Kick, Role::Admin));
        assert!(!may(None, false, Act::GiveRole, Role::Member));
        assert!(may(None, false, Act::Kick, Role::Owner));
    }

    #[test]
    fn bans_and_mutes_end_and_are_pruned() {
        let mut m = Moderation::default();
        let u = UserId::from("u");
        m.set_ban(&u, Some(100));
        m.set_mute(&u, Some(50));
        assert_eq!(m.banned_until(&u, 99), Some(100));
        assert_eq!(m.banned_until(&u, 100), None);
        assert_eq!(m.muted_until(&u, 10), Some(50));
        m.prune(60);
        assert!(m.mutes.is_empty());
        assert_eq!(m.bans.len(), 1);
        m.set_ban(&u, None);
        assert!(m.bans.is_empty());
    }

    #[test]
    fn control_reserves_playback() {
        assert!(may_control(Control::Everyone, Role::Member));
        assert!(!may_control(Control::Hosts, Role::Member));
        assert!(may_control(Control::Hosts, Role::Admin));
        assert!(!may_control(Control::Owner, Role::Admin));
        assert!(may_control(Control::Owner, Role::Owner));
    }
}
