//! Presence across nodes, in Redis. Per room (one hash slot): `members` counts each
//! user's connections cluster-wide, `names` keeps their names, and each node's `share`
//! counts its own connections, so that a survivor can subtract a dead node's share and
//! announce `member_left` for users who were only there. Each step is one Lua script, so
//! two nodes never both think they saw a user's first or last connection.

use super::connection::RedisLink;
use super::keys::Keys;
use crate::presence::Arrival;
use redis::{RedisResult, Script};
use std::sync::LazyLock;
use synctv_core::{Actor, RoomId, UserId};

static ARRIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local members, names, share = KEYS[1], KEYS[2], KEYS[3]
local user, name, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('HEXISTS', members, user) == 1 then
  redis.call('HINCRBY', members, user, 1)
  redis.call('HINCRBY', share, user, 1)
  return 2
end
if redis.call('HLEN', members) >= limit then return 0 end
redis.call('HSET', members, user, 1)
redis.call('HSET', names, user, name)
redis.call('HINCRBY', share, user, 1)
return 1
",
    )
});

static DEPART: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local members, names, share = KEYS[1], KEYS[2], KEYS[3]
local user = ARGV[1]
if tonumber(redis.call('HINCRBY', share, user, -1)) <= 0 then redis.call('HDEL', share, user) end
if tonumber(redis.call('HINCRBY', members, user, -1)) <= 0 then
  redis.call('HDEL', members, user)
  redis.call('HDEL', names, user)
  return 1
end
return 0
",
    )
});

static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local gone = {}
local share = redis.call('HGETALL', KEYS[3])
for i = 1, #share, 2 do
  local user, n = share[i], tonumber(share[i + 1])
  if tonumber(redis.call('HINCRBY', KEYS[1], user, -n)) <= 0 then
    local name = redis.call('HGET', KEYS[2], user) or ''
    redis.call('HDEL', KEYS[1], user)
    redis.call('HDEL', KEYS[2], user)
    table.insert(gone, user)
    table.insert(gone, name)
  end
end
redis.call('DEL', KEYS[3])
return gone
",
    )
});

/// Replaces this node's share of a room with its own count, adjusting the cluster-wide
/// count by the difference. ARGV: n, then n triples of user, name, connections. Returns
/// the users who were absent cluster-wide before (Redis lost them, or a survivor took
/// this node for dead and recorded them as gone).
static RESTORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = {}
local flat = redis.call('HGETALL', KEYS[3])
for i = 1, #flat, 2 do old[flat[i]] = tonumber(flat[i + 1]) end
local new = {}
local arrived = {}
for i = 0, tonumber(ARGV[1]) - 1 do
  local user, name, n = ARGV[2 + 3 * i], ARGV[3 + 3 * i], tonumber(ARGV[4 + 3 * i])
  new[user] = n
  if redis.call('HEXISTS', KEYS[1], user) == 0 then table.insert(arrived, user) end
  redis.call('HSET', KEYS[2], user, name)
  local delta = n - (old[user] or 0)
  if delta ~= 0 then redis.call('HINCRBY', KEYS[1], user, delta) end
end
for user, n in pairs(old) do
  if new[user] == nil and tonumber(redis.call('HINCRBY', KEYS[1], user, -n)) <= 0 then
    redis.call('HDEL', KEYS[1], user)
    redis.call('HDEL', KEYS[2], user)
  end
end
redis.call('DEL', KEYS[3])
for user, n in pairs(new) do redis.call('HSET', KEYS[3], user, n) end
return arrived
",
    )
});

pub struct ClusterPresence {
    keys: Keys,
    node_id: String,
}

impl ClusterPresence {
    pub fn new(keys: Keys, node_id: &str) -> Self {
        Self {
            keys,
            node_id: node_id.to_owned(),
        }
    }

    fn room_keys(&self, room: &RoomId, node: &str) -> [String; 3] {
        [
            self.keys.room_members(room),
            self.keys.room_names(room),
            self.keys.room_node_share(room, node),
        ]
    }

    pub async fn arrive(
        &self,
        link: &mut RedisLink,
        room: &RoomId,
        who: &Actor,
        limit: usize,
    ) -> RedisResult<Arrival> {
        let [members, names, share] = self.room_keys(room, &self.node_id);
        let limit = limit.to_string();
        let answer: i64 = link
            .run_script(
                &ARRIVE,
                &[&members, &names, &share],
                &[who.user_id.as_str(), &who.name, &limit],
            )
            .await?;
        let mut cmd = redis::cmd("SADD");
        cmd.arg(self.keys.node_rooms(&self.node_id))
            .arg(room.as_str());
        link.query::<i64>(&cmd).await?;
        Ok(match answer {
            1 => Arrival::First,
            2 => Arrival::Again,
            _ => Arrival::Full,
        })
    }

    /// `true` when this was the user's last connection in the room, cluster-wide.
    pub async fn depart(
        &self,
        link: &mut RedisLink,
        room: &RoomId,
        user: &UserId,
    ) -> RedisResult<bool> {
        let [members, names, share] = self.room_keys(room, &self.node_id);
        let last: i64 = link
            .run_script(&DEPART, &[&members, &names, &share], &[user.as_str()])
            .await?;
        Ok(last == 1)
    }

    pub async fn count(&self, link: &mut RedisLink, room: &RoomId) -> RedisResult<usize> {
        let mut cmd = redis::cmd("HLEN");
        cmd.arg(self.keys.room_members(room));
        link.query(&cmd).await
    }

    pub async fn members(&self, link: &mut RedisLink, room: &RoomId) -> RedisResult<Vec<Actor>> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.keys.room_names(room));
        let pairs: Vec<(String, String)> = link.query(&cmd).await?;
        let mut list: Vec<Actor> = pairs
            .into_iter()
            .map(|(user_id, name)| Actor {
                user_id: UserId::from(user_id),
                name,
            })
            .collect();
        list.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(list)
    }

    /// Writes this node's share of `room` as `users` (id, name, connections): after Redis
    /// lost it (a restart) or a survivor reaped it (a partition taken for a death).
    /// Returns the users who were absent cluster-wide until now.
    pub async fn restore(
        &self,
        link: &mut RedisLink,
        room: &RoomId,
        users: &[(Actor, usize)],
    ) -> RedisResult<Vec<Actor>> {
        let [members, names, share] = self.room_keys(room, &self.node_id);
        let mut args = vec![users.len().to_string()];
        for (who, count) in users {
            args.extend([who.user_id.to_string(), who.name.clone(), count.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let arrived: Vec<String> = link
            .run_script(&RESTORE, &[&members, &names, &share], &args)
            .await?;
        let mut cmd = redis::cmd("SADD");
        cmd.arg(self.keys.node_rooms(&self.node_id))
            .arg(room.as_str());
        link.query::<i64>(&cmd).await?;
        let arrived: Vec<Actor> = users
            .iter()
            .filter(|(who, _)| arrived.iter().any(|id| id == who.user_id.as_str()))
            .map(|(who, _)| who.clone())
            .collect();
        Ok(arrived)
    }

    /// Removes a dead node's share of every room it held; returns the users who are gone
    /// from each room as a result.
    pub async fn reap(
        &self,
        link: &mut RedisLink,
        node: &str,
    ) -> RedisResult<Vec<(RoomId, Vec<Actor>)>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.keys.node_rooms(node));
        let rooms: Vec<String> = link.query(&cmd).await?;
        let mut departed = Vec::new();
        for room in rooms.into_iter().map(RoomId::from) {
            let [members, names, share] = self.room_keys(&room, node);
            let gone: Vec<String> = link
                .run_script(&REAP, &[&members, &names, &share], &[])
                .await?;
            let actors: Vec<Actor> = gone
                .chunks(2)
                .filter_map(|pair| match pair {
                    [id, name] => Some(Actor {
                        user_id: UserId::from(id.as_str()),
                        name: name.clone(),
                    }),
                    _ => None,
                })
                .collect();
            if !actors.is_empty() {
                departed.push((room, actors));
            }
        }
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.keys.node_rooms(node));
        link.query::<i64>(&cmd).await?;
        Ok(departed)
    }
}
