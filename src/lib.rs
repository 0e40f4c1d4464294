//! Cancellation for Rust's threaded and async code, with the semantics of
//! .NET's `CancellationTokenSource` and the lock-free core of C++'s
//! `std::stop_token`.
//!
//! A [`CancellationSource`] signals; [`CancellationToken`]s observe it by
//! polling ([`is_cancelled`](CancellationToken::is_cancelled), one atomic
//! load), by callbacks ([`register`](CancellationToken::register)), by
//! futures or by blocking waits. Sources link into trees and DAGs, carry a
//! [`CancelReason`] and can time out.
//!
//! # Shape
//! Each source owns one atomic state word and one intrusive list. Every
//! observer (callback, waiting future, blocked thread, linked child) is a node
//! in that list. The word's bit lock guards the list for O(1) pointer updates
//! only; callbacks and wakers always run with no lock held.
//!
//! ```
//! use cancel_core::CancellationSource;
//!
//! let source = CancellationSource::new();
//! let token = source.token();
//! let _registration = token.register(|| println!("cancelled"));
//! assert!(!token.is_cancelled());
//! source.cancel();
//! assert!(token.check().is_err());
//! ```
//!
//! # Features
//! - `std` (default; implies `alloc`): thread parking (blocking waits,
//!   registration drops that wait for a running callback by parking,
//!   `callback_scope`), the default timer thread (`with_timeout`,
//!   `cancel_after`), panic isolation between callbacks (and
//!   `cancel_catching`), and `std::io::Error` conversion.
//! - `alloc`: the heap sources ([`CancellationSource`], counted
//!   [`CancellationToken`]s, boxed callbacks, links, timeouts on a
//!   [`ManualClock`] or another [`Timer`], shutdown scopes). Without it the
//!   crate calls no allocator: [`InplaceSource`] and its tokens,
//!   [`PinnedRegistration`], the futures, [`NeverToken`], the [`Token`]
//!   traits and `CancellationToken::none()` remain.
//! - `critical-section`: for chips without compare-and-swap (`thumbv6m`,
//!   `riscv32imc`: atomics from portable-atomic's critical-section
//!   fallback) and for sources cancelled from interrupt handlers: every
//!   hold of a source's internal lock is a critical section. The program
//!   provides the implementation (see `docs/embedded.md`).
//! - `futures-core`: `FusedFuture` for the futures (so `futures::select!`
//!   takes them as they are; see [`WaitForCancellation`]).
//! - `stream` (implies `futures-core`): `CancellationStreamExt::take_until_cancelled`
//!   over `futures_core::Stream`, a `FusedStream`.
//! - `tokio-util` (implies `std`): bridges to and from
//!   `tokio_util::sync::CancellationToken` (`token.to_tokio()`,
//!   `CancellationSource::from_tokio(&t)`).
//! - `tokio` (implies `std`): `Timer::tokio(&handle)`, timeouts on tokio's
//!   timer (a paused test clock drives them).
//! - `embassy-time`: `time::embassy::timer()`, timeouts on embassy-time
//!   (`no_std`).
//!
//! Time: every clock is a [`Timer`] (see [`time`]); `token.deadline()` is a
//! [`Deadline`] value that works without `std`, with `grpc-timeout` encoding.
//!
//! Futures and the future adapter trait [`CancellationFutureExt`] need no
//! feature. On docs.rs every item shows the feature it needs.

#![no_std]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The loom build is a test configuration, not a platform: no "non-loom" badge.
#![cfg_attr(docsrs, doc(auto_cfg(hide(loom))))]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc")]
extern crate alloc;

// A clear error rather than a wall of missing atomic methods.
#[cfg(all(not(target_has_atomic = "ptr"), not(feature = "critical-section")))]
compile_error!(
    "cancel-core needs atomic compare-and-swap, which this target lacks: enable feature \
     `critical-section` (and provide a critical-section implementation)"
);
#[cfg(any(feature = "std", test))]
extern crate std;

// The core, `raw/`: the only code allowed to use `unsafe`.
#[allow(unsafe_code)]
mod raw;
// Below the core: the loom shim, and where caught panics go.
mod sync;
#[cfg(feature = "std")]
mod unwind;

// The public faces: safe code over the core.
mod future;
#[cfg(feature = "alloc")]
mod guard;
mod inplace;
#[cfg(feature = "tokio-util")]
mod interop;
#[cfg(feature = "alloc")]
mod link;
mod never;
#[cfg(feature = "std")]
mod panics;
mod pinned;
mod reason;
#[cfg(feature = "alloc")]
mod registration;
#[cfg(feature = "std")]
mod scope;
#[cfg(feature = "alloc")]
mod shutdown;
#[cfg(feature = "alloc")]
mod source;
#[cfg(feature = "stream")]
mod stream;
#[cfg(feature = "alloc")]
pub mod time;
mod token;
mod token_trait;
#[cfg(feature = "std")]
mod wait;
#[cfg(feature = "alloc")]
mod work_guard;

pub use future::{
    CancellationFutureExt, RunUntilCancelled, RunUntilCancelledOwned, WaitForCancellation,
    WaitForCancellationOwned,
};
#[cfg(feature = "alloc")]
pub use guard::{DropGuard, DropGuardRef};
#[cfg(feature = "alloc")]
pub use inplace::InplaceChild;
pub use inplace::{InplaceSource, InplaceToken};
#[cfg(feature = "tokio-util")]
pub use interop::{FromTokio, ToTokio};
pub use never::{NeverCallback, NeverToken};
#[cfg(feature = "std")]
pub use panics::CallbackPanics;
pub use pinned::PinnedRegistration;
pub use reason::{CancelOrigin, CancelReason, Cancelled};
#[cfg(feature = "alloc")]
pub use registration::Registration;
#[cfg(feature = "std")]
pub use registration::Unregistering;
#[cfg(feature = "std")]
pub use scope::{CallbackScope, ScopedRegistration, callback_scope};
#[cfg(feature = "std")]
pub use shutdown::ShutdownFinishedWithin;
#[cfg(feature = "alloc")]
pub use shutdown::{InFlight, Shutdown, ShutdownFinished, ShutdownStarted};
#[cfg(feature = "alloc")]
pub use source::CancellationSource;
#[cfg(feature = "stream")]
pub use stream::{CancellationStreamExt, TakeUntilCancelled};
#[doc(hidden)]
#[cfg(feature = "std")]
pub use time::default_timer_armed;
#[cfg(feature = "alloc")]
pub use time::{Deadline, ManualClock, TimeoutTarget, Timer};
pub use token::CancellationToken;
pub use token_trait::{CallbackToken, CoreToken, PinnedCallback, Token};
#[cfg(feature = "alloc")]
pub use work_guard::{ShutdownOnPanic, Tracked, WorkGuard, WorkPanicked};
