//! Issue-3 semantics: linked sources, reasons, the drop guard.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use cancel_core::{CancelReason, CancellationSource, CancellationToken, Cancelled};

#[derive(Debug)]
struct Boom(&'static str);
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for Boom {}

fn custom_text(t: &CancellationToken) -> Option<String> {
    match t.reason()? {
        CancelReason::Custom(c) => Some(c.to_string()),
        _ => None,
    }
}

#[test]
fn any_parent_cancels_the_child_and_the_child_never_cancels_a_parent() {
    let a = CancellationSource::new();
    let b = CancellationSource::new();
    let child = CancellationSource::linked([&a.token(), &b.token()]);
    assert!(child.cancel());
    assert!(!a.is_cancelled() && !b.is_cancelled());

    for which in 0..2 {
        let a = CancellationSource::new();
        let b = CancellationSource::new();
        let child = CancellationSource::linked([&a.token(), &b.token()]);
        let token = child.token();
        [&a, &b][which].cancel();
        assert!(token.is_cancelled());
        assert!(child.is_cancelled());
        assert!(![&a, &b][1 - which].is_cancelled());
    }
}

#[test]
fn none_parents_are_skipped_duplicates_count_once_and_zero_parents_is_plain() {
    let plain = CancellationSource::linked(std::iter::empty::<&CancellationToken>());
    assert!(plain.token().can_be_cancelled());
    assert!(plain.cancel());

    let none = CancellationToken::none();
    let only_none = CancellationSource::linked([&none, &none]);
    let t = only_none.token();
    drop(only_none);
    assert!(!t.can_be_cancelled(), "a none() parent adds nothing");

    let parent = CancellationSource::new();
    let pt = parent.token();
    let ran = Arc::new(AtomicUsize::new(0));
    let child = CancellationSource::linked([&pt, &none, &pt, &pt.clone()]);
    let r = ran.clone();
    let _reg = child.token().register(move || {
        r.fetch_add(1, SeqCst);
    });
    parent.cancel();
    assert_eq!(ran.load(SeqCst), 1);

    // Many duplicates beyond the inline buffer.
    let parents: Vec<_> = (0..20).map(|_| CancellationSource::new()).collect();
    let mut tokens: Vec<_> = parents.iter().map(|p| p.token()).collect();
    tokens.extend(tokens.clone());
    let child = CancellationSource::linked(tokens.iter());
    parents[17].cancel();
    assert!(child.is_cancelled());
}

#[test]
fn an_already_cancelled_parent_gives_a_born_cancelled_child() {
    let live = CancellationSource::new();
    let dead = CancellationSource::new();
    dead.cancel_with(Boom("earlier"));
    let child = CancellationSource::linked([&live.token(), &dead.token()]);
    assert!(child.is_cancelled());
    assert_eq!(custom_text(&child.token()).as_deref(), Some("earlier"));
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let _reg = child.token().register(move || {
        r.fetch_add(1, SeqCst);
    });
    assert_eq!(ran.load(SeqCst), 1, "late registration runs inline");
    // It registered nothing in the live parent: cancelling it runs nothing new.
    assert!(live.cancel());
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn cancel_returns_after_the_whole_subtree_ran_in_depth_first_lifo_order() {
    let root = CancellationSource::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let push = |name: &'static str| {
        let log = log.clone();
        move || log.lock().unwrap().push(name)
    };
    let _r1 = root.token().register(push("root-1"));
    let a = root.token().child();
    let _a1 = a.token().register(push("a-1"));
    let aa = a.token().child();
    let _aa1 = aa.token().register(push("aa-1"));
    let _r2 = root.token().register(push("root-2"));
    let b = root.token().child();
    let _b1 = b.token().register(push("b-1"));
    root.cancel();
    assert_eq!(
        *log.lock().unwrap(),
        ["b-1", "root-2", "aa-1", "a-1", "root-1"],
        "each list LIFO, a child's subtree runs where its link stands"
    );
    assert!(a.is_cancelled() && aa.is_cancelled() && b.is_cancelled());
}

fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

fn chain(depth: usize) -> (CancellationSource, Vec<CancellationSource>) {
    let root = CancellationSource::new();
    let mut sources = Vec::with_capacity(depth);
    let mut last = root.token();
    for _ in 0..depth {
        let child = last.child();
        last = child.token();
        sources.push(child);
    }
    (root, sources)
}

const DEEP: usize = if cfg!(miri) { 500 } else { 1_000_000 };

#[test]
fn cancelling_a_million_deep_chain_needs_no_stack() {
    on_small_stack(|| {
        let (root, chain) = chain(DEEP);
        let leaf = chain.last().unwrap().token();
        root.cancel();
        assert!(leaf.is_cancelled());
        drop(chain);
    });
}

#[test]
fn dropping_a_million_deep_chain_leaf_first_or_root_first_needs_no_stack() {
    on_small_stack(|| {
        let (root, mut chain) = chain(DEEP);
        while let Some(s) = chain.pop() {
            drop(s);
        }
        drop(root);
    });
    on_small_stack(|| {
        let (root, chain) = chain(DEEP);
        drop(root);
        drop(chain); // drops root-first
    });
    on_small_stack(|| {
        // Only the leaf's token is kept: the intermediates live through links.
        let root = CancellationSource::new();
        let mut last = root.token();
        for _ in 0..DEEP {
            last = last.child().token();
        }
        assert!(last.can_be_cancelled());
        root.cancel();
        assert!(last.is_cancelled());
    });
}

#[cfg(feature = "std")]
#[test]
fn a_token_keeps_its_links_after_the_linked_source_is_dropped() {
    let outer = CancellationSource::new();
    fn start(outer: &CancellationToken) -> CancellationToken {
        let linked = CancellationSource::linked([outer]);
        linked.token()
        // `linked` dropped here
    }
    let token = start(&outer.token());
    assert!(token.can_be_cancelled(), "the parent can still cancel it");
    let handle = thread::spawn(move || {
        token.wait();
        token.reason()
    });
    outer.cancel();
    assert!(matches!(
        handle.join().unwrap(),
        Some(CancelReason::Requested)
    ));
}

#[test]
fn a_grandchild_is_cancelled_through_an_intermediate_without_handles() {
    let root = CancellationSource::new();
    let grandchild = {
        let child = root.token().child();
        child.token().child()
    };
    root.cancel();
    assert!(grandchild.is_cancelled());
}

#[test]
fn can_be_cancelled_for_linked_children() {
    let parent = CancellationSource::new();
    let child = parent.token().child();
    let token = child.token();
    drop(child);
    assert!(token.can_be_cancelled(), "a cancellable parent is linked");
    drop(parent);
    assert!(!token.can_be_cancelled(), "nothing up the links can cancel");
    // Several parents: true while any can.
    let a = CancellationSource::new();
    let b = CancellationSource::new();
    let t = CancellationSource::linked([&a.token(), &b.token()]).token();
    drop(a);
    assert!(t.can_be_cancelled());
    drop(b);
    assert!(!t.can_be_cancelled());
}

#[test]
fn reasons_first_cancellation_wins_and_children_inherit() {
    let parent = CancellationSource::new();
    let child = parent.token().child();
    let other_child = parent.token().child();
    assert!(other_child.cancel_with(Boom("own")));
    assert!(parent.cancel_with(Boom("parent cause")));
    assert!(!parent.cancel());
    assert!(!parent.cancel_with(Boom("later")));
    assert_eq!(
        custom_text(&parent.token()).as_deref(),
        Some("parent cause")
    );
    assert_eq!(custom_text(&child.token()).as_deref(), Some("parent cause"));
    assert_eq!(custom_text(&other_child.token()).as_deref(), Some("own"));
    let err: Cancelled = child.token().check().unwrap_err();
    // The cause is the error's source, not repeated in its message (the
    // error-chain convention).
    assert_eq!(err.to_string(), "operation cancelled");
    assert!(matches!(err.reason(), CancelReason::Custom(_)));
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "parent cause"
    );

    let s = CancellationSource::new();
    s.cancel();
    assert!(matches!(s.token().reason(), Some(CancelReason::Requested)));
    assert_eq!(
        CancelReason::TimedOut.to_string(),
        "the operation timed out"
    );
}

#[test]
fn reason_is_visible_whenever_the_bit_is() {
    for _ in 0..if cfg!(miri) { 2 } else { 200 } {
        let source = CancellationSource::new();
        let token = source.token();
        let reader = thread::spawn(move || {
            loop {
                if token.is_cancelled() {
                    return token.reason().is_some();
                }
                std::hint::spin_loop();
            }
        });
        source.cancel_with(Boom("x"));
        assert!(reader.join().unwrap());
    }
}

#[test]
fn drop_guard_cancels_on_drop_and_while_unwinding_and_disarm_returns_the_source() {
    let source = CancellationSource::new();
    let token = source.token();
    let guard = source.drop_guard();
    assert_eq!(guard.token(), token);
    let source = guard.disarm();
    assert!(!token.is_cancelled());
    let guard = source.drop_guard();
    drop(guard);
    assert!(token.is_cancelled());

    let source = CancellationSource::new();
    let token = source.token();
    let result = thread::spawn(move || {
        let _guard = source.drop_guard();
        panic!("unwinding");
    })
    .join();
    assert!(result.is_err());
    assert!(token.is_cancelled());
}

// Without `std` the guard cannot catch a callback's panic while unwinding.
#[cfg(feature = "std")]
#[test]
fn drop_guard_survives_a_panicking_callback_while_unwinding() {
    let source = CancellationSource::new();
    let token = source.token();
    let _reg = token.register(|| panic!("callback panic during unwinding"));
    let result = thread::spawn(move || {
        let _guard = source.drop_guard();
        panic!("first");
    })
    .join();
    assert_eq!(*result.unwrap_err().downcast::<&str>().unwrap(), "first");
    assert!(token.is_cancelled());
}

#[test]
fn seeds_retry_pattern_per_attempt_source_under_a_master() {
    // Each attempt gets its own linked source, cancelled by the attempt
    // itself (standing in for a timeout). The loop tells an attempt's
    // cancellation from the master's by asking the sources.
    let master = CancellationSource::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let m = master.token();
    let a = attempts.clone();
    let master_handle = master.clone();
    let worker = thread::spawn(move || -> Result<(), Cancelled> {
        loop {
            let attempt = CancellationSource::linked([&m]);
            let token = attempt.token();
            let n = a.fetch_add(1, SeqCst) + 1;
            if n == 5 {
                master_handle.cancel();
            }
            attempt.cancel(); // the "timeout" of this attempt
            match token.check() {
                Err(e) if m.is_cancelled() => return Err(e),
                Err(_) => {
                    assert!(attempt.is_cancelled() && !m.is_cancelled());
                    continue;
                }
                Ok(()) => unreachable!(),
            }
        }
    });
    let err = worker.join().unwrap().unwrap_err();
    assert_eq!(attempts.load(SeqCst), 5);
    assert!(matches!(err.reason(), CancelReason::Requested));
    assert!(master.is_cancelled());
}

#[test]
fn concurrent_parent_cancel_and_child_churn() {
    for _ in 0..if cfg!(miri) { 2 } else { 50 } {
        let parent = CancellationSource::new();
        let barrier = Arc::new(Barrier::new(3));
        let ran = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (t, b, r) = (parent.token(), barrier.clone(), ran.clone());
                thread::spawn(move || {
                    b.wait();
                    let mut kept = Vec::new();
                    for i in 0..if cfg!(miri) { 10 } else { 200 } {
                        let child = t.child();
                        let r = r.clone();
                        let reg = child.token().register(move || {
                            r.fetch_add(1, SeqCst);
                        });
                        if i % 2 == 0 {
                            kept.push((child, reg));
                        }
                    }
                    kept
                })
            })
            .collect();
        barrier.wait();
        parent.cancel();
        let kept: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        // Every child kept alive is cancelled, and its callback ran once.
        assert!(kept.iter().all(|(c, _)| c.is_cancelled()));
        let ran_now = ran.load(SeqCst);
        assert!(ran_now >= kept.len());
        drop(kept);
        assert_eq!(ran.load(SeqCst), ran_now);
    }
}

#[test]
fn registering_on_a_sourceless_child_while_its_parent_cancels_never_loses_the_callback() {
    // The child's own source is gone: only the link can cancel it. A
    // register racing the parent's cancel must run (inline or by cancel).
    for _ in 0..if cfg!(miri) { 5 } else { 2_000 } {
        let parent = CancellationSource::new();
        let token = parent.token().child().token();
        let barrier = Arc::new(Barrier::new(2));
        let ran = Arc::new(AtomicUsize::new(0));
        let (b, p) = (barrier.clone(), parent.clone());
        let canceller = thread::spawn(move || {
            b.wait();
            p.cancel();
        });
        barrier.wait();
        let r = ran.clone();
        let reg = token.register(move || {
            r.fetch_add(1, SeqCst);
        });
        canceller.join().unwrap();
        assert_eq!(ran.load(SeqCst), 1, "callback lost");
        assert!(token.is_cancelled());
        drop(reg);
    }
}

#[test]
fn can_be_cancelled_is_exact_on_small_dags_and_bounded_on_wide_ones() {
    // Layers of two sources, each linked to both sources below; every source
    // handle dropped except the root's. The walk branches once per linked
    // source on the way down: 2^layers paths.
    fn layers(root: &CancellationSource, n: usize) -> CancellationToken {
        let mut layer = vec![root.token(), root.token().child().token()];
        for _ in 0..n {
            let next: Vec<CancellationToken> = (0..2)
                .map(|_| CancellationSource::linked(layer.iter()).token())
                .collect();
            layer = next;
        }
        layer.swap_remove(0)
    }
    // Small (6 layers: 1 + 2 + ... + 32 = 63 branchings, within the budget
    // of 64): exact, both ways. (With 7 layers, 127, this fails.)
    let root = CancellationSource::new();
    let small = layers(&root, 6);
    assert!(small.can_be_cancelled());
    drop(root);
    assert!(!small.can_be_cancelled(), "exact within the budget");

    // Wide (40 layers: 2^40 paths): the documented conservative `true`,
    // and the answer comes back (the walk is bounded).
    let root = CancellationSource::new();
    let wide = layers(&root, 40);
    assert!(wide.can_be_cancelled());
    drop(root);
    assert!(wide.can_be_cancelled(), "conservative past the budget");
}
