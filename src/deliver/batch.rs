//! Batching by count and bytes (pure): decides where one request body ends and the next begins.
//!
//! The time cap lives in the worker (`sender.rs`), which owns the clock.

use crate::encode::Item;

pub use crate::encode::INGESTION_MAX_BODY_BYTES;
/// Default `LANGFUSE_MAX_QUEUE`: items per request.
pub const DEFAULT_MAX_ITEMS: usize = 500;

/// The limits of one request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Most items in one body (≥ 1).
    pub max_items: usize,
    /// Most bytes in one body, framing included (uncompressed).
    pub max_bytes: usize,
}

/// The result of offering an item to a batch.
#[derive(Debug)]
#[must_use]
pub enum Push {
    /// Taken. `full` says the batch reached a cap and should be flushed now.
    Added { full: bool },
    /// Not taken: it would push the batch over its byte cap. Flush, then push it again
    /// (an empty batch always takes an item, however large, so this cannot loop).
    Overflow(Item),
}

/// Items accumulating towards one request body.
#[derive(Debug)]
pub struct Batch {
    caps: Caps,
    /// Bytes of the body's prefix and suffix.
    framing: usize,
    items: Vec<Item>,
    /// Body size if flushed now.
    bytes: usize,
}

impl Batch {
    pub fn new(caps: Caps, framing: usize) -> Batch {
        Batch {
            caps,
            framing,
            items: Vec::new(),
            bytes: framing,
        }
    }

    /// Offer an item.
    pub fn push(&mut self, item: Item) -> Push {
        // Items after the first are preceded by a comma.
        let added = item.json.len() + usize::from(!self.items.is_empty());
        if !self.items.is_empty() && self.bytes + added > self.caps.max_bytes {
            return Push::Overflow(item);
        }
        self.bytes += added;
        self.items.push(item);
        let full = self.items.len() >= self.caps.max_items || self.bytes >= self.caps.max_bytes;
        Push::Added { full }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The body size if flushed now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Take the items, leaving the batch empty.
    pub fn take(&mut self) -> Vec<Item> {
        self.bytes = self.framing;
        std::mem::take(&mut self.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: usize) -> Item {
        Item {
            session_id: "s".into(),
            key: format!("k{n}"),
            json: vec![b'x'; n],
            trace_tag: None,
        }
    }

    #[test]
    fn count_cap_marks_full() {
        let mut b = Batch::new(
            Caps {
                max_items: 2,
                max_bytes: 1000,
            },
            10,
        );
        assert!(matches!(b.push(item(5)), Push::Added { full: false }));
        assert!(matches!(b.push(item(5)), Push::Added { full: true }));
        assert_eq!(b.bytes(), 10 + 5 + 1 + 5);
        assert_eq!(b.take().len(), 2);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 10);
    }

    #[test]
    fn byte_cap_overflows_and_never_exceeds() {
        let caps = Caps {
            max_items: 100,
            max_bytes: 50,
        };
        let mut b = Batch::new(caps, 10);
        assert!(matches!(b.push(item(20)), Push::Added { full: false }));
        // 10 + 20 + 1 + 20 = 51 > 50
        let Push::Overflow(back) = b.push(item(20)) else {
            panic!("expected overflow")
        };
        assert_eq!(back.key, "k20");
        assert_eq!(b.len(), 1);
        assert!(b.bytes() <= caps.max_bytes);
    }

    #[test]
    fn empty_batch_takes_an_oversize_item() {
        let mut b = Batch::new(
            Caps {
                max_items: 5,
                max_bytes: 50,
            },
            10,
        );
        assert!(matches!(b.push(item(500)), Push::Added { full: true }));
    }
}
