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
//! - `std` (default): thread parking (blocking waits, registration drops that
//!   wait for a running callback, [`PinnedRegistration`], `callback_scope`),
//!   the default timer thread (`with_timeout`, `cancel_after`),
//!   panic isolation between callbacks (and `cancel_catching`),
//!   and `std::io::Error` conversion. Without it the crate is `no_std` +
//!   `alloc`; timeouts then run on a [`ManualClock`].
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

extern crate alloc;
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
mod guard;
mod inplace;
#[cfg(feature = "tokio-util")]
mod interop;
mod link;
mod never;
#[cfg(feature = "std")]
mod panics;
mod reason;
mod registration;
#[cfg(feature = "std")]
mod scope;
mod shutdown;
mod source;
#[cfg(feature = "stream")]
mod stream;
pub mod time;
mod token;
mod token_trait;
#[cfg(feature = "std")]
mod wait;
mod work_guard;

pub use future::{
    CancellationFutureExt, RunUntilCancelled, RunUntilCancelledOwned, WaitForCancellation,
    WaitForCancellationOwned,
};
pub use guard::{DropGuard, DropGuardRef};
pub use inplace::{InplaceSource, InplaceToken};
#[cfg(feature = "tokio-util")]
pub use interop::{FromTokio, ToTokio};
pub use never::{NeverCallback, NeverToken};
#[cfg(feature = "std")]
pub use panics::CallbackPanics;
pub use reason::{CancelOrigin, CancelReason, Cancelled};
#[cfg(feature = "std")]
pub use registration::Unregistering;
pub use registration::{PinnedRegistration, Registration};
#[cfg(feature = "std")]
pub use scope::{CallbackScope, ScopedRegistration, callback_scope};
#[cfg(feature = "std")]
pub use shutdown::ShutdownFinishedWithin;
pub use shutdown::{InFlight, Shutdown, ShutdownFinished, ShutdownStarted};
pub use source::CancellationSource;
#[cfg(feature = "stream")]
pub use stream::{CancellationStreamExt, TakeUntilCancelled};
#[doc(hidden)]
#[cfg(feature = "std")]
pub use time::default_timer_armed;
pub use time::{Deadline, ManualClock, Timer};
pub use token::CancellationToken;
pub use token_trait::{CallbackToken, CoreToken, PinnedCallback, Token};
pub use work_guard::{ShutdownOnPanic, Tracked, WorkGuard, WorkPanicked};
