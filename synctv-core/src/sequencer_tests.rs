//! The sequencer's decisions, on a row in memory.

use super::*;
use crate::queue::MAX_QUEUE_ITEMS;

const OWNER: &str = "owner";
const TIMEOUT: i64 = 10_000;

fn actor(id: &str) -> Actor {
    Actor {
        user_id: id.into(),
        name: id.to_uppercase(),
    }
}

fn row(control: Control) -> RoomRow {
    RoomRow {
        epoch: "e".into(),
        last_seq: 0,
        state: PlaybackState::initial(0),
        archived: false,
        owner: OWNER.into(),
        control,
        rules: RoomRules::default(),
        queue_json: None,
        queue: None,
        rules_changed: false,
        queue_changed: false,
    }
}

fn at(now_ms: i64) -> Sequencer {
    Sequencer {
        now_ms,
        ready_timeout_ms: TIMEOUT,
    }
}

fn change(by: &str, kind: RoomChangeKind) -> RoomChange {
    RoomChange {
        room: "r".into(),
        by: Some(actor(by)),
        kind,
    }
}

fn committed(outcome: ChangeOutcome) -> CommittedChange {
    match outcome {
        ChangeOutcome::Committed(done) => done,
        ChangeOutcome::Rejected(r) => panic!("rejected: {r:?}"),
    }
}

fn rejected(outcome: ChangeOutcome) -> Rejection {
    match outcome {
        ChangeOutcome::Rejected(r) => r,
        ChangeOutcome::Committed(done) => panic!("committed: {:?}", done.events),
    }
}

fn play(force: bool) -> RoomChangeKind {
    let mut cmd = PlaybackCommand::new(PlaybackAction::Play, None, None, None).unwrap();
    cmd.force = force;
    RoomChangeKind::Playback(cmd)
}

fn seek(position: f64) -> RoomChangeKind {
    RoomChangeKind::Playback(
        PlaybackCommand::new(PlaybackAction::Seek, Some(position), None, None).unwrap(),
    )
}

fn add(url: &str) -> RoomChangeKind {
    RoomChangeKind::QueueAdd(NewItem {
        url: url.into(),
        title: None,
        duration: Some(60.0),
        index: None,
    })
}

#[test]
fn roles_kicks_and_mutes_follow_who_may_do_what() {
    let mut r = row(Control::Everyone);
    let s = at(1_000);
    let give = |user: &str| RoomChangeKind::SetRole {
        user: user.into(),
        role: Role::Admin,
    };
    assert_eq!(
        rejected(s.apply(&mut r, &change("bob", give("carol")))),
        Rejection::Forbidden("only the owner gives roles, to anyone but itself")
    );
    let done = committed(s.apply(&mut r, &change(OWNER, give("bob"))));
    assert_eq!(done.events[0].kind, EventKind::Role);
    assert_eq!(
        done.events[0].data,
        json!({"user_id": "bob", "role": "admin"})
    );
    assert!(r.rules_changed);
    // An admin kicks members, not another admin nor the owner, nor itself.
    let kick = |user: &str, ban_secs| RoomChangeKind::Kick {
        user: user.into(),
        ban_secs,
    };
    assert!(matches!(
        rejected(s.apply(&mut r, &change(OWNER, give(OWNER)))),
        Rejection::Forbidden(_)
    ));
    committed(s.apply(&mut r, &change(OWNER, give("dave"))));
    assert!(matches!(
        rejected(s.apply(&mut r, &change("bob", kick("dave", 0)))),
        Rejection::Forbidden(_)
    ));
    assert!(matches!(
        rejected(s.apply(&mut r, &change("bob", kick(OWNER, 0)))),
        Rejection::Forbidden(_)
    ));
    let done = committed(s.apply(&mut r, &change("bob", kick("carol", 60))));
    assert_eq!(
        done.events[0].data,
        json!({"user_id": "carol", "banned_until": 61_000})
    );
    // The ban holds at a join until it ends.
    let join = RoomChangeKind::MemberJoined(actor("carol"));
    assert_eq!(
        rejected(at(60_999).apply(&mut r, &change("carol", join.clone()))),
        Rejection::Banned(61_000)
    );
    committed(at(61_000).apply(&mut r, &change("carol", join)));
    // A mute forbids chat until it is lifted.
    let mute = |secs| RoomChangeKind::Mute {
        user: "carol".into(),
        secs,
    };
    let done = committed(s.apply(&mut r, &change("bob", mute(30))));
    assert_eq!(done.events[0].data["muted_until"], 31_000);
    let chat = RoomChangeKind::Chat("hi".into());
    assert!(matches!(
        rejected(s.apply(&mut r, &change("carol", chat.clone()))),
        Rejection::Forbidden(_)
    ));
    let done = committed(s.apply(&mut r, &change("bob", mute(0))));
    assert_eq!(done.events[0].data["muted_until"], Value::Null);
    committed(s.apply(&mut r, &change("carol", chat)));
    // The server may kick anyone.
    let by_server = RoomChange {
        room: "r".into(),
        by: None,
        kind: kick("bob", 0),
    };
    committed(s.apply(&mut r, &by_server));
    assert_eq!(r.last_seq, 8, "one seq per event, none for refusals");
}

#[test]
fn control_hosts_reserves_playback_and_the_queue_to_owner_and_admins() {
    let mut r = row(Control::Hosts);
    let s = at(0);
    assert!(matches!(
        rejected(s.apply(&mut r, &change("bob", play(false)))),
        Rejection::Forbidden(_)
    ));
    assert!(matches!(
        rejected(s.apply(&mut r, &change("bob", add("https://x/a")))),
        Rejection::Forbidden(_)
    ));
    let admin = RoomChangeKind::SetRole {
        user: "bob".into(),
        role: Role::Admin,
    };
    committed(s.apply(&mut r, &change(OWNER, admin)));
    committed(s.apply(&mut r, &change("bob", play(false))));
    committed(s.apply(&mut r, &change("bob", add("https://x/a"))));
    let mut owner_only = row(Control::Owner);
    owner_only.rules = r.rules.clone();
    assert!(matches!(
        rejected(s.apply(&mut owner_only, &change("bob", play(false)))),
        Rejection::Forbidden(_)
    ));
}

#[test]
fn the_queue_changes_through_events_and_next_advances_once() {
    let mut r = row(Control::Everyone);
    let s = at(0);
    let done = committed(s.apply(&mut r, &change("bob", add("https://x/a"))));
    assert_eq!(done.events[0].data["action"], "add");
    assert_eq!(done.events[0].data["item"]["item_id"], "q1");
    assert_eq!(done.events[0].data["index"], 0);
    committed(s.apply(&mut r, &change("bob", add("https://x/b"))));
    let moved = RoomChangeKind::QueueMove {
        item_id: "q2".into(),
        index: 0,
    };
    committed(s.apply(&mut r, &change("bob", moved)));
    let past = RoomChangeKind::QueueMove {
        item_id: "q2".into(),
        index: 2,
    };
    assert_eq!(
        rejected(s.apply(&mut r, &change("bob", past))),
        Rejection::IndexPastEnd
    );
    let version = r.state.version;
    let next = RoomChangeKind::Next {
        if_version: Some(version),
    };
    let done = committed(s.apply(&mut r, &change("bob", next.clone())));
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].kind, EventKind::Media);
    assert_eq!(done.events[0].data["from_queue"]["url"], "https://x/b");
    assert_eq!(done.state.media.as_ref().unwrap().duration, Some(60.0));
    // A second client at the end with the same version: only the first advanced.
    assert!(matches!(
        rejected(s.apply(&mut r, &change("carol", next))),
        Rejection::Conflict(_)
    ));
    let remove = RoomChangeKind::QueueRemove {
        item_id: "q1".into(),
    };
    committed(s.apply(&mut r, &change("bob", remove.clone())));
    assert!(matches!(
        rejected(s.apply(&mut r, &change("bob", remove))),
        Rejection::QueueItemNotFound(_)
    ));
    assert!(matches!(
        rejected(s.apply(
            &mut r,
            &change("bob", RoomChangeKind::Next { if_version: None })
        )),
        Rejection::QueueItemNotFound(_)
    ));
    assert!(r.queue_changed);
}

#[test]
fn a_501st_item_is_refused() {
    let mut r = row(Control::Everyone);
    for _ in 0..MAX_QUEUE_ITEMS {
        committed(at(0).apply(&mut r, &change("bob", add("https://x/a"))));
    }
    assert_eq!(
        rejected(at(0).apply(&mut r, &change("bob", add("https://x/a")))),
        Rejection::QueueFull
    );
}

#[test]
fn a_play_waits_for_buffering_waiters_and_starts_once_when_the_last_is_ready() {
    let mut r = row(Control::Everyone);
    let s = at(1_000);
    let status = |st| RoomChangeKind::Status(st);
    committed(s.apply(&mut r, &change("bob", status(PlayerStatus::Ready))));
    committed(s.apply(&mut r, &change("carol", status(PlayerStatus::Ready))));
    // A repeat changes nothing: no event (ack seq null).
    let same = committed(s.apply(&mut r, &change("bob", status(PlayerStatus::Ready))));
    assert!(same.events.is_empty() && same.seq().is_none());
    // A seek marks every waiter buffering; a play then waits for them.
    committed(s.apply(&mut r, &change("alice", seek(30.0))));
    let done = committed(s.apply(&mut r, &change("alice", play(false))));
    assert!(!done.state.playing);
    assert_eq!(
        done.state.waiting_for,
        vec![UserId::from("bob"), "carol".into()]
    );
    assert_eq!(done.state.wait_until, Some(1_000 + TIMEOUT));
    let done = committed(at(2_000).apply(&mut r, &change("bob", status(PlayerStatus::Ready))));
    assert_eq!(done.events.len(), 1, "carol is still buffering");
    assert_eq!(done.state.waiting_for, vec![UserId::from("carol")]);
    let done = committed(at(3_000).apply(&mut r, &change("carol", status(PlayerStatus::Ready))));
    assert_eq!(done.events.len(), 2);
    assert_eq!(done.events[0].kind, EventKind::MemberStatus);
    let start = &done.events[1];
    assert_eq!(start.kind, EventKind::Playback);
    assert_eq!(start.data["waited"], true);
    assert!(start.by.is_none());
    assert!(done.state.playing && done.state.waiting_for.is_empty());
    assert_eq!(done.state.position, 30.0);
    // The timer of that wait rings later: the wait is over, nothing happens.
    let late = RoomChange {
        room: "r".into(),
        by: None,
        kind: RoomChangeKind::WaitTimeout {
            until: 1_000 + TIMEOUT,
        },
    };
    assert!(committed(at(11_000).apply(&mut r, &late)).events.is_empty());
}

#[test]
fn the_timeout_starts_without_the_straggler_and_only_once() {
    let mut r = row(Control::Everyone);
    committed(at(0).apply(
        &mut r,
        &change("bob", RoomChangeKind::Status(PlayerStatus::Buffering)),
    ));
    let done = committed(at(0).apply(&mut r, &change("alice", play(false))));
    let until = done.state.wait_until.unwrap();
    let ring = RoomChange {
        room: "r".into(),
        by: None,
        kind: RoomChangeKind::WaitTimeout { until },
    };
    let done = committed(at(until).apply(&mut r, &ring));
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].data["waited"], true);
    assert!(done.state.playing);
    // A second node's timer for the same wait changes nothing.
    assert!(committed(at(until + 5).apply(&mut r, &ring))
        .events
        .is_empty());
}

#[test]
fn a_leaving_waiter_a_pause_and_a_forced_play_end_the_wait() {
    let mut r = row(Control::Everyone);
    let buffering = RoomChangeKind::Status(PlayerStatus::Buffering);
    committed(at(0).apply(&mut r, &change("bob", buffering.clone())));
    committed(at(0).apply(&mut r, &change("alice", play(false))));
    let left = RoomChangeKind::MemberLeft(actor("bob"));
    let done = committed(at(1).apply(&mut r, &change("bob", left)));
    assert_eq!(done.events.len(), 2, "member_left, then the start");
    assert!(done.state.playing);
    assert!(r.rules.waiters.statuses.is_empty());
    // Pause ends a wait paused.
    committed(at(2).apply(&mut r, &change("carol", buffering)));
    committed(at(2).apply(&mut r, &change("alice", seek(5.0))));
    assert!(!r.state.playing && !r.state.waiting_for.is_empty());
    let pause = RoomChangeKind::Playback(
        PlaybackCommand::new(PlaybackAction::Pause, None, None, None).unwrap(),
    );
    let done = committed(at(3).apply(&mut r, &change("alice", pause)));
    assert!(!done.state.playing && done.state.waiting_for.is_empty());
    assert_eq!(done.state.wait_until, None);
    // A forced play starts at once.
    let done = committed(at(4).apply(&mut r, &change("alice", play(true))));
    assert!(done.state.playing && done.state.waiting_for.is_empty());
}

#[test]
fn version_1_clients_are_never_waited_for() {
    let mut r = row(Control::Everyone);
    committed(at(0).apply(&mut r, &change("alice", seek(3.0))));
    let done = committed(at(0).apply(&mut r, &change("alice", play(false))));
    assert!(done.state.playing && done.state.waiting_for.is_empty());
}

#[test]
fn an_archived_room_refuses_everything() {
    let mut r = row(Control::Everyone);
    committed(at(0).apply(&mut r, &change(OWNER, RoomChangeKind::Archive)));
    assert_eq!(
        rejected(at(0).apply(&mut r, &change(OWNER, RoomChangeKind::Chat("x".into())))),
        Rejection::NotFound
    );
}
