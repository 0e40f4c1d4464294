//! The core: the only code with `unsafe`. One atomic state word and one
//! intrusive list per source; every observer is a node in that list.
//!
//! Dependencies point one way, from the top of this table down (a module
//! uses only modules below it):
//!
//! | module | job |
//! |---|---|
//! | `tracker.rs` | a shutdown scope's count of work in flight (also its reference count) and its completion, on two sources |
//! | `handle.rs`, `inplace.rs` | the operations the public types call, each a door into a protocol; the in-place source's state and its lifetime |
//! | `cancel.rs` | cancel = claim + drain: the loop over the list, one step per node kind; a clock's fire |
//! | `kinds/{pinned,scoped}.rs` | the pinned registration's phase machine; scopes of borrowing callbacks (both over the callback node) |
//! | `kinds/{callback,waiter,thread}.rs` | the observer kinds: node, attach, detach, drain step |
//! | `lifetime.rs` | `StateRef`, the counted reference; destroy and retire |
//! | `kinds/{link,timer}.rs` | links to children (and a child's allocation), timers and their queues |
//! | `kinds/mod.rs` | what the drain's steps share with its loop (`Drain`, `Next`) |
//! | `state.rs` | `State`: word + list head + cause; allocation; refcounts; claim; attach/detach idioms |
//! | `node.rs`, `reason.rs`, `wake_batch.rs` | the node header and its statuses; the stored reason; the stack batch of wakers |
//! | `word.rs` | the state word's bits, the reason kind's encoding |
//! | `bitlock.rs`, `list.rs` | a lock on one bit of an atomic word (and a spin lock); intrusive list surgery |
//!
//! The public faces (`src/*.rs` beside this folder) use only what is
//! re-exported here.

mod bitlock;
mod cancel;
mod handle;
mod inplace;
mod kinds;
mod lifetime;
mod list;
mod node;
mod reason;
mod state;
#[cfg(feature = "alloc")]
mod tracker;
mod wake_batch;
mod word;

#[cfg(feature = "tokio-util")]
pub(crate) use bitlock::SpinLock;
#[cfg(feature = "alloc")]
pub(crate) use cancel::fire_due;
#[cfg(feature = "alloc")]
pub(crate) use inplace::InplaceChildState;
pub(crate) use inplace::InplaceState;
#[cfg(feature = "alloc")]
pub(crate) use kinds::boxed::RawRegistration;
#[cfg(feature = "std")]
pub(crate) use kinds::boxed::UnregisterAsync;
pub(crate) use kinds::pinned::InlineCallback;
#[cfg(feature = "std")]
pub(crate) use kinds::scoped::{ScopeCore, run as run_scope};
#[cfg(feature = "alloc")]
pub(crate) use kinds::timer::{NEVER, Ticks, TimeSource, Timeline};
pub(crate) use kinds::waiter::Waiter;
pub(crate) use lifetime::{HoldsState, StateRef, StateView};
#[cfg(feature = "alloc")]
pub(crate) use reason::CustomCause;
pub(crate) use reason::Reason;
#[cfg(feature = "alloc")]
pub(crate) use tracker::{TrackerRef, WorkRef};
pub(crate) use word::Origin;
