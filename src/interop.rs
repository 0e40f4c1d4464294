//! Bridges to tokio-util's `CancellationToken` (feature `tokio-util`), the
//! .NET recipe 10.9 "interop with other cancellation systems". Each bridge
//! costs one registration on the side that is observed and leaks nothing:
//! dropping the bridge removes its registration.

use std::boxed::Box;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Wake, Waker};

use tokio_util::sync::{CancellationToken as TokioToken, WaitForCancellationFutureOwned};

use crate::raw::SpinLock;
use crate::registration::Registration;
use crate::source::CancellationSource;
use crate::token::CancellationToken;

/// A tokio-util token that is cancelled when a cancel-core token is. Made by
/// [`CancellationToken::to_tokio`]. It holds one registration on the
/// cancel-core token; dropping the bridge removes it (the tokio token then
/// stops following).
///
/// ```
/// use cancel_core::CancellationSource;
///
/// let source = CancellationSource::new();
/// let bridge = source.token().to_tokio();
/// let tokio_token = bridge.token().clone();
/// source.cancel();
/// assert!(tokio_token.is_cancelled());
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-util")))]
#[must_use = "the tokio-util token follows only while the ToTokio lives: keep it in a named \
              variable (`let bridge = token.to_tokio();`) and hand out `bridge.token().clone()`"]
pub struct ToTokio {
    token: TokioToken,
    _registration: Registration,
}

impl ToTokio {
    /// The tokio-util token (clone it to hand it out). Keep the `ToTokio`
    /// itself for as long as the clones should follow.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let bridge = source.token().to_tokio();
    /// let for_a_task = bridge.token().clone();
    /// drop(bridge); // the clone stops following
    /// source.cancel();
    /// assert!(!for_a_task.is_cancelled());
    /// ```
    pub fn token(&self) -> &TokioToken {
        &self.token
    }
}

impl fmt::Debug for ToTokio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToTokio")
            .field("token", &self.token)
            .finish()
    }
}

impl CancellationToken {
    /// A tokio-util token cancelled whenever this one is; see [`ToTokio`].
    ///
    /// Use it to call a library that takes tokio-util's token (a server's
    /// graceful shutdown, any crate built on tokio-util) from code that
    /// uses cancel-core.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// fn serve(shutdown: tokio_util::sync::CancellationToken) -> bool {
    ///     shutdown.is_cancelled() // a library that speaks tokio-util
    /// }
    ///
    /// let source = CancellationSource::new();
    /// let bridge = source.token().to_tokio();
    /// assert!(!serve(bridge.token().clone()));
    /// source.cancel();
    /// assert!(serve(bridge.token().clone()));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio-util")))]
    pub fn to_tokio(&self) -> ToTokio {
        let token = TokioToken::new();
        let t = token.clone();
        let registration = self.register(move || t.cancel());
        ToTokio {
            token,
            _registration: registration,
        }
    }
}

/// A cancel-core source that is cancelled when a tokio-util token is. Made
/// by [`CancellationSource::from_tokio`]. It holds one waiter on the tokio
/// token (tokio-util's `cancelled_owned()` future, polled by its own waker,
/// so no runtime is involved); dropping the bridge removes it.
///
/// The source is cancelled inside tokio's `cancel()` (from the waker), so
/// its callbacks run there. A callback that panics is reported by the panic
/// hook as usual, but the panic is not resumed into tokio's `cancel()`: it
/// would unwind through tokio's waker and strand tokio's other waiters.
///
/// ```
/// use cancel_core::CancellationSource;
///
/// let tokio_token = tokio_util::sync::CancellationToken::new();
/// let bridge = CancellationSource::from_tokio(&tokio_token);
/// let token = bridge.source().token();
/// tokio_token.cancel();
/// assert!(token.is_cancelled());
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-util")))]
#[must_use = "the source follows the tokio-util token only while the FromTokio lives: keep it \
              in a named variable"]
pub struct FromTokio {
    source: CancellationSource,
    bridge: Arc<Bridge>,
}

/// The polled tokio future and the source it cancels. The waker holds it
/// weakly, so the tokio side (which stores the waker) keeps nothing alive.
struct Bridge {
    future: SpinLock<Option<Pin<Box<WaitForCancellationFutureOwned>>>>,
    source: CancellationSource,
}

struct BridgeWaker(Weak<Bridge>);

impl Wake for BridgeWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(bridge) = self.0.upgrade() {
            Bridge::poll(&bridge, self.clone());
        }
    }
}

impl Bridge {
    /// Polls the tokio future with `waker`; cancels the source once it is
    /// ready. The future is polled under the bridge's own lock and dropped
    /// after it.
    fn poll(bridge: &Arc<Bridge>, waker: Arc<BridgeWaker>) {
        let waker = Waker::from(waker);
        let done = bridge.future.with(|slot| match slot.as_mut() {
            Some(future) => {
                if future
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_ready()
                {
                    slot.take()
                } else {
                    None
                }
            }
            None => None,
        });
        if done.is_some() {
            drop(done);
            // This runs inside tokio-util's `Waker::wake`: a panic of a
            // callback of ours must not unwind through it (tokio would drop
            // its other wakers unwoken and stop its tree cancel part-way).
            // Every callback still runs (the drain goes on past a panic); the
            // panic hook has reported the panic where it happened, and the
            // payload is dropped here.
            if let Err(payload) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bridge.source.cancel()))
            {
                crate::unwind::drop_payload(payload);
            }
        }
    }
}

impl FromTokio {
    /// The source that follows the tokio token (it can also be cancelled on
    /// its own; that never cancels the tokio token). Hand out its tokens,
    /// or make children of it.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let app_shutdown = tokio_util::sync::CancellationToken::new();
    /// let bridge = CancellationSource::from_tokio(&app_shutdown);
    /// let request = bridge.source().child();
    /// bridge.source().cancel(); // stops our work only
    /// assert!(request.is_cancelled());
    /// assert!(!app_shutdown.is_cancelled());
    /// ```
    pub fn source(&self) -> &CancellationSource {
        &self.source
    }
}

impl Drop for FromTokio {
    fn drop(&mut self) {
        // Remove the waiter from the tokio token now, even if a waker clone
        // is still held somewhere.
        let future = self.bridge.future.with(|slot| slot.take());
        drop(future);
    }
}

impl fmt::Debug for FromTokio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromTokio")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl CancellationSource {
    /// A source cancelled whenever `token` (tokio-util's) is; see
    /// [`FromTokio`]. If `token` is already cancelled, so is the source.
    ///
    /// Use it where the application's shutdown signal is a tokio-util token
    /// and the code below it uses cancel-core.
    ///
    /// ```
    /// use cancel_core::{CancellationSource, CancellationToken};
    ///
    /// fn copy_files(token: &CancellationToken) -> bool {
    ///     token.is_cancelled() // code that speaks cancel-core
    /// }
    ///
    /// let shutdown = tokio_util::sync::CancellationToken::new();
    /// let bridge = CancellationSource::from_tokio(&shutdown);
    /// let token = bridge.source().token();
    /// assert!(!copy_files(&token));
    /// shutdown.cancel();
    /// assert!(copy_files(&token));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio-util")))]
    pub fn from_tokio(token: &TokioToken) -> FromTokio {
        let source = CancellationSource::new();
        let bridge = Arc::new(Bridge {
            future: SpinLock::new(Some(Box::pin(token.clone().cancelled_owned()))),
            source: source.clone(),
        });
        let waker = Arc::new(BridgeWaker(Arc::downgrade(&bridge)));
        Bridge::poll(&bridge, waker);
        FromTokio { source, bridge }
    }
}

/// tokio-util's token as a [`Token`](crate::Token): generic code takes it
/// as it is, without a bridge. Its `check` error carries
/// [`CancelReason::Requested`](crate::CancelReason::Requested) (tokio-util
/// records no reason), and it takes no callbacks (it has none), so it is
/// not a [`CallbackToken`](crate::CallbackToken).
///
/// ```
/// use cancel_core::Token;
///
/// fn poll_once(token: &impl Token) -> bool {
///     token.is_cancelled()
/// }
/// let token = tokio_util::sync::CancellationToken::new();
/// assert!(!poll_once(&token));
/// token.cancel();
/// assert!(poll_once(&token));
/// assert!(cancel_core::Token::check(&token).unwrap_err().reason().is_requested());
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-util")))]
impl crate::token_trait::Token for TokioToken {
    type Wait<'a> = tokio_util::sync::WaitForCancellationFuture<'a>;

    #[inline]
    fn is_cancelled(&self) -> bool {
        TokioToken::is_cancelled(self)
    }
    /// Always `true`: tokio-util cannot tell.
    #[inline]
    fn can_be_cancelled(&self) -> bool {
        true
    }
    fn check(&self) -> Result<(), crate::Cancelled> {
        if self.is_cancelled() {
            Err(crate::Cancelled::new(crate::CancelReason::Requested))
        } else {
            Ok(())
        }
    }
    fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        TokioToken::cancelled(self)
    }
}
