//! A runtime that keeps the cancellation state inside its own operation
//! struct (the role of C++26's `inplace_stop_source` in `std::execution`):
//! each operation's stop state is a field, linked to the runtime's
//! shutdown token, with no allocation per operation. The operation is a
//! pinned future; cancelling one operation never reaches the others, and
//! the runtime's shutdown reaches them all.
//!
//! `cargo run --example embedded_state`

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use cancel_core::{CancellationSource, CancellationToken, InplaceChild, InplaceToken};

pin_project_lite::pin_project! {
    /// One operation of the runtime: its work, and its stop state in place.
    struct Operation<F> {
        #[pin]
        stop: InplaceChild,
        #[pin]
        work: F,
        id: u32,
    }
}

impl<F: Future<Output = u32>> Operation<F> {
    fn new(shutdown: &CancellationToken, id: u32, work: F) -> Self {
        Operation {
            stop: InplaceChild::new(shutdown),
            work,
            id,
        }
    }

    /// The token the operation's own code would observe.
    fn token(self: Pin<&Self>) -> InplaceToken<'_> {
        self.project_ref().stop.token()
    }

    fn cancel(self: Pin<&Self>) -> bool {
        self.project_ref().stop.cancel()
    }
}

impl<F: Future<Output = u32>> Future for Operation<F> {
    type Output = Result<u32, String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Err(e) = this.stop.as_ref().token().check() {
            return Poll::Ready(Err(format!("operation {}: {e}", this.id)));
        }
        this.work.poll(cx).map(Ok)
    }
}

fn main() {
    let runtime_shutdown = CancellationSource::new();
    let never_done = std::future::pending::<u32>;

    let mut a = pin!(Operation::new(&runtime_shutdown.token(), 1, never_done()));
    let mut b = pin!(Operation::new(&runtime_shutdown.token(), 2, never_done()));
    let done = pin!(Operation::new(&runtime_shutdown.token(), 3, async { 42 }));

    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert_eq!(futures::executor::block_on(done), Ok(42));
    assert!(a.as_mut().poll(&mut cx).is_pending());

    // Cancelling one operation: only that one.
    assert!(b.as_ref().cancel());
    println!("{:?}", b.as_mut().poll(&mut cx));
    assert!(!a.as_ref().token().is_cancelled());

    // The runtime's shutdown reaches every operation still linked.
    runtime_shutdown.cancel();
    let out = a.as_mut().poll(&mut cx);
    println!("{out:?}");
    assert!(matches!(out, Poll::Ready(Err(_))));
    println!(
        "operation state: {} bytes in place",
        size_of::<Operation<std::future::Pending<u32>>>()
    );
}
