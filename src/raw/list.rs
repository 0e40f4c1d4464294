//! A non-owning view of an intrusive doubly linked list: pointer surgery only.
//!
//! No atomics, no locking, no knowledge of what a node is. Every function is
//! `unsafe` because the caller must hold the lock that guards the list and
//! every node in it (for cancel-core: the state word's bit lock).

use core::ptr::{self, NonNull};

use crate::sync::UnsafeCell;

/// The two pointers a node needs to be in a list. Embedded first in every node.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Links {
    next: UnsafeCell<*mut Links>,
    prev: UnsafeCell<*mut Links>,
}

/// The list's head pointer; null when empty.
pub(crate) type Head = UnsafeCell<*mut Links>;

impl Links {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            next: UnsafeCell::new(ptr::null_mut()),
            prev: UnsafeCell::new(ptr::null_mut()),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            next: UnsafeCell::new(ptr::null_mut()),
            prev: UnsafeCell::new(ptr::null_mut()),
        }
    }

    /// Once a node is off every list its `next` pointer is free; the cancel
    /// loop uses it to chain the nodes it is working through (a stack).
    ///
    /// # Safety
    /// The node is in no list and the caller has exclusive use of it.
    pub(crate) unsafe fn set_spare(&self, value: *mut Links) {
        // SAFETY: exclusive use of an unlisted node (the caller's contract).
        self.next.with_mut(|p| unsafe { *p = value });
    }

    /// Reads what `set_spare` stored.
    ///
    /// # Safety
    /// As for `set_spare`.
    pub(crate) unsafe fn spare(&self) -> *mut Links {
        // SAFETY: exclusive use of an unlisted node (the caller's contract).
        self.next.with(|p| unsafe { *p })
    }
}

/// Inserts `node` at the front (so the list pops LIFO).
///
/// # Safety
/// The caller holds the list's lock; `node` is valid and in no list.
pub(crate) unsafe fn push_front(head: &Head, node: NonNull<Links>) {
    // SAFETY: the lock gives us exclusive access to `head` and to the links
    // of every listed node; `node` is valid and unlisted (caller's contract).
    unsafe {
        let old = head.with(|h| *h);
        let n = node.as_ref();
        n.next.with_mut(|p| *p = old);
        n.prev.with_mut(|p| *p = ptr::null_mut());
        if let Some(old) = NonNull::new(old) {
            old.as_ref().prev.with_mut(|p| *p = node.as_ptr());
        }
        head.with_mut(|h| *h = node.as_ptr());
    }
}

/// Inserts `node` right after `anchor`.
///
/// # Safety
/// The caller holds the list's lock; `anchor` is in this list; `node` is
/// valid and in no list.
pub(crate) unsafe fn insert_after(anchor: NonNull<Links>, node: NonNull<Links>) {
    // SAFETY: the lock gives exclusive access to the links of every listed
    // node; `anchor` is listed and `node` is valid (caller's contract).
    unsafe {
        let a = anchor.as_ref();
        let n = node.as_ref();
        let next = a.next.with(|p| *p);
        n.prev.with_mut(|p| *p = anchor.as_ptr());
        n.next.with_mut(|p| *p = next);
        if let Some(next) = NonNull::new(next) {
            next.as_ref().prev.with_mut(|p| *p = node.as_ptr());
        }
        a.next.with_mut(|p| *p = node.as_ptr());
    }
}

/// Removes and returns the front node, if any.
///
/// # Safety
/// The caller holds the list's lock.
pub(crate) unsafe fn pop_front(head: &Head) -> Option<NonNull<Links>> {
    // SAFETY: the lock gives us exclusive access to `head` and to the links of
    // every listed node; listed nodes are valid (their owners unlink them
    // under the same lock before freeing them).
    unsafe {
        let first = NonNull::new(head.with(|h| *h))?;
        let next = first.as_ref().next.with(|p| *p);
        if let Some(next) = NonNull::new(next) {
            next.as_ref().prev.with_mut(|p| *p = ptr::null_mut());
        }
        head.with_mut(|h| *h = next);
        first.as_ref().next.with_mut(|p| *p = ptr::null_mut());
        Some(first)
    }
}

/// Unlinks `node` from anywhere in the list in O(1).
///
/// # Safety
/// The caller holds the list's lock and `node` is in this list.
pub(crate) unsafe fn remove(head: &Head, node: NonNull<Links>) {
    // SAFETY: as for `pop_front`; `node` is listed here (caller's contract),
    // so its neighbours are listed and valid too.
    unsafe {
        let n = node.as_ref();
        let next = n.next.with(|p| *p);
        let prev = n.prev.with(|p| *p);
        match NonNull::new(prev) {
            Some(prev) => prev.as_ref().next.with_mut(|p| *p = next),
            None => head.with_mut(|h| *h = next),
        }
        if let Some(next) = NonNull::new(next) {
            next.as_ref().prev.with_mut(|p| *p = prev);
        }
        n.next.with_mut(|p| *p = ptr::null_mut());
        n.prev.with_mut(|p| *p = ptr::null_mut());
    }
}

/// The node after `node` (null at the end).
///
/// # Safety
/// The caller holds the list's lock and `node` is in this list.
pub(crate) unsafe fn next(node: NonNull<Links>) -> *mut Links {
    // SAFETY: reading a listed node's link under the lock (caller's contract).
    unsafe { node.as_ref().next.with(|p| *p) }
}

/// Drops every node before `new_front` from the list at once: `new_front`
/// (null: none, the list becomes empty) becomes the head. The dropped nodes'
/// links are left stale: they are in no list now, and are rewritten by the
/// next insertion; the caller must not `remove` them.
///
/// # Safety
/// The caller holds the list's lock; `new_front` is null or in this list.
pub(crate) unsafe fn cut_front(head: &Head, new_front: *mut Links) {
    // SAFETY: the lock gives us exclusive access to `head` and to the links
    // of every listed node (caller's contract).
    unsafe {
        if let Some(front) = NonNull::new(new_front) {
            front.as_ref().prev.with_mut(|p| *p = ptr::null_mut());
        }
        head.with_mut(|h| *h = new_front);
    }
}

/// The front node, without removing it.
///
/// # Safety
/// The caller holds the list's lock.
pub(crate) unsafe fn front(head: &Head) -> Option<NonNull<Links>> {
    // SAFETY: reading the head under the lock (caller's contract).
    head.with(|h| NonNull::new(unsafe { *h }))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Test nodes: links plus a tag, as a real node embeds its links first.
    #[repr(C)]
    struct Item {
        links: Links,
        tag: u32,
    }

    /// Built once and never grown, so the items stay where they are.
    fn items(n: u32) -> Vec<Item> {
        (0..n)
            .map(|tag| Item {
                links: Links::new(),
                tag,
            })
            .collect()
    }

    fn ptr(item: &Item) -> NonNull<Links> {
        NonNull::from(item).cast()
    }

    /// The tags from the head, checking every `prev` link on the way.
    fn tags(head: &Head) -> Vec<u32> {
        let mut out = Vec::new();
        // SAFETY: the test owns the list and every node in it.
        unsafe {
            let mut prev: *mut Links = ptr::null_mut();
            let mut cur = head.with(|h| *h);
            while let Some(node) = NonNull::new(cur) {
                assert_eq!(node.as_ref().prev.with(|p| *p), prev, "prev link");
                out.push(node.cast::<Item>().as_ref().tag);
                prev = cur;
                cur = next(node);
            }
        }
        out
    }

    #[test]
    fn push_front_pops_lifo_and_front_peeks() {
        let nodes = items(3);
        let head: Head = UnsafeCell::new(ptr::null_mut());
        // SAFETY: single-threaded; the nodes outlive the list.
        unsafe {
            assert!(front(&head).is_none());
            for n in &nodes {
                push_front(&head, ptr(n));
            }
            assert_eq!(tags(&head), [2, 1, 0]);
            assert_eq!(front(&head), Some(ptr(&nodes[2])));
            assert_eq!(pop_front(&head), Some(ptr(&nodes[2])));
            assert_eq!(tags(&head), [1, 0]);
            assert_eq!(pop_front(&head), Some(ptr(&nodes[1])));
            assert_eq!(pop_front(&head), Some(ptr(&nodes[0])));
            assert_eq!(pop_front(&head), None);
            assert!(tags(&head).is_empty());
        }
    }

    #[test]
    fn remove_from_the_front_middle_and_back() {
        let nodes = items(5);
        let head: Head = UnsafeCell::new(ptr::null_mut());
        // SAFETY: as above.
        unsafe {
            for n in &nodes {
                push_front(&head, ptr(n));
            }
            remove(&head, ptr(&nodes[2])); // middle
            assert_eq!(tags(&head), [4, 3, 1, 0]);
            remove(&head, ptr(&nodes[4])); // front
            assert_eq!(tags(&head), [3, 1, 0]);
            remove(&head, ptr(&nodes[0])); // back
            assert_eq!(tags(&head), [3, 1]);
            // A removed node can be inserted again.
            push_front(&head, ptr(&nodes[2]));
            assert_eq!(tags(&head), [2, 3, 1]);
        }
    }

    #[test]
    fn insert_after_keeps_both_neighbours_linked() {
        let nodes = items(4);
        let head: Head = UnsafeCell::new(ptr::null_mut());
        // SAFETY: as above.
        unsafe {
            push_front(&head, ptr(&nodes[0]));
            insert_after(ptr(&nodes[0]), ptr(&nodes[1])); // at the end
            assert_eq!(tags(&head), [0, 1]);
            insert_after(ptr(&nodes[0]), ptr(&nodes[2])); // in the middle
            assert_eq!(tags(&head), [0, 2, 1]);
            insert_after(ptr(&nodes[1]), ptr(&nodes[3]));
            assert_eq!(tags(&head), [0, 2, 1, 3]);
        }
    }

    #[test]
    fn cut_front_drops_a_run_and_leaves_the_rest_whole() {
        let nodes = items(5);
        let head: Head = UnsafeCell::new(ptr::null_mut());
        // SAFETY: as above.
        unsafe {
            for n in &nodes {
                push_front(&head, ptr(n));
            }
            // [4, 3, 2, 1, 0]: cut 4 and 3 off, 2 becomes the head.
            cut_front(&head, ptr(&nodes[2]).as_ptr());
            assert_eq!(tags(&head), [2, 1, 0]);
            remove(&head, ptr(&nodes[1]));
            assert_eq!(tags(&head), [2, 0]);
            cut_front(&head, ptr::null_mut());
            assert!(tags(&head).is_empty());
        }
    }

    #[test]
    fn a_spare_pointer_is_kept_by_an_unlisted_node() {
        let nodes = items(2);
        // SAFETY: unlisted nodes owned by the test.
        unsafe {
            nodes[0].links.set_spare(ptr(&nodes[1]).as_ptr());
            assert_eq!(nodes[0].links.spare(), ptr(&nodes[1]).as_ptr());
        }
    }
}
