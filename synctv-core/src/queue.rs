//! A room's queue (contract 1.1, "The queue"): an ordered list of up to 500 items. Pure;
//! the sequencer changes it inside the room's commit, so every member on every node sees
//! the same queue, changed only through events.

use crate::event::Actor;
use serde::{Deserialize, Serialize};

/// The most items a queue holds; the next `queue_add` answers `queue_full`.
pub const MAX_QUEUE_ITEMS: usize = 500;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    pub item_id: String,
    pub url: String,
    pub title: Option<String>,
    pub duration: Option<f64>,
    pub added_by: Actor,
}

/// What a client asks to add.
#[derive(Clone, Debug, PartialEq)]
pub struct NewItem {
    pub url: String,
    pub title: Option<String>,
    pub duration: Option<f64>,
    pub index: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is full (500 items)")]
    Full,
    #[error("no such item in the queue")]
    UnknownItem,
    #[error("index is past the end of the queue")]
    IndexPastEnd,
    #[error("the queue is empty")]
    Empty,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    #[serde(default)]
    pub items: Vec<QueueItem>,
    /// The number in the next item's id: ids are never reused within a room.
    #[serde(default)]
    pub next_id: u64,
}

impl Queue {
    /// Adds an item at `index` (default last); the item and where it went.
    pub fn add(&mut self, new: NewItem, by: Actor) -> Result<(QueueItem, usize), QueueError> {
        if self.items.len() >= MAX_QUEUE_ITEMS {
            return Err(QueueError::Full);
        }
        let index = new.index.unwrap_or(self.items.len());
        if index > self.items.len() {
            return Err(QueueError::IndexPastEnd);
        }
        self.next_id += 1;
        let item = QueueItem {
            item_id: format!("q{}", self.next_id),
            url: new.url,
            title: new.title,
            duration: new.duration,
            added_by: by,
        };
        self.items.insert(index, item.clone());
        Ok((item, index))
    }

    pub fn remove(&mut self, item_id: &str) -> Result<QueueItem, QueueError> {
        let at = self.position(item_id)?;
        Ok(self.items.remove(at))
    }

    /// Moves an item so that it ends at `index`.
    pub fn move_to(&mut self, item_id: &str, index: usize) -> Result<(), QueueError> {
        let at = self.position(item_id)?;
        if index >= self.items.len() {
            return Err(QueueError::IndexPastEnd);
        }
        let item = self.items.remove(at);
        self.items.insert(index, item);
        Ok(())
    }

    /// Takes the first item (`next`).
    pub fn pop_front(&mut self) -> Result<QueueItem, QueueError> {
        if self.items.is_empty() {
            return Err(QueueError::Empty);
        }
        Ok(self.items.remove(0))
    }

    fn position(&self, item_id: &str) -> Result<usize, QueueError> {
        self.items
            .iter()
            .position(|i| i.item_id == item_id)
            .ok_or(QueueError::UnknownItem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by() -> Actor {
        Actor {
            user_id: "u".into(),
            name: "n".into(),
        }
    }

    fn new(url: &str, index: Option<usize>) -> NewItem {
        NewItem {
            url: url.into(),
            title: None,
            duration: None,
            index,
        }
    }

    fn urls(q: &Queue) -> Vec<&str> {
        q.items.iter().map(|i| i.url.as_str()).collect()
    }

    #[test]
    fn add_remove_move_next_keep_the_order() {
        let mut q = Queue::default();
        let (a, at) = q.add(new("a", None), by()).unwrap();
        assert_eq!((a.item_id.as_str(), at), ("q1", 0));
        q.add(new("b", None), by()).unwrap();
        let (_, at) = q.add(new("c", Some(0)), by()).unwrap();
        assert_eq!(at, 0);
        assert_eq!(urls(&q), ["c", "a", "b"]);
        q.move_to("q3", 2).unwrap();
        assert_eq!(urls(&q), ["a", "b", "c"]);
        assert_eq!(q.move_to("q3", 3), Err(QueueError::IndexPastEnd));
        assert_eq!(q.remove("q2").unwrap().url, "b");
        assert_eq!(q.remove("q2"), Err(QueueError::UnknownItem));
        assert_eq!(q.pop_front().unwrap().url, "a");
        assert_eq!(q.pop_front().unwrap().url, "c");
        assert_eq!(q.pop_front(), Err(QueueError::Empty));
        let (d, _) = q.add(new("d", None), by()).unwrap();
        assert_eq!(d.item_id, "q4", "ids are never reused");
    }

    #[test]
    fn the_501st_item_and_an_index_past_the_end_are_refused() {
        let mut q = Queue::default();
        assert_eq!(
            q.add(new("x", Some(1)), by()),
            Err(QueueError::IndexPastEnd)
        );
        for _ in 0..MAX_QUEUE_ITEMS {
            q.add(new("x", None), by()).unwrap();
        }
        assert_eq!(q.add(new("x", None), by()), Err(QueueError::Full));
    }
}
