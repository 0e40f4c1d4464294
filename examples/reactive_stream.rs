//! Recipe 10.6: reactive streams. `take_until_cancelled` ends a stream when
//! its token is cancelled (feature `stream`).
//! Run: `cargo run --example reactive_stream --features stream`

use std::pin::pin;

use cancel_core::{CancellationSource, CancellationStreamExt};
use futures::StreamExt;

fn main() {
    let source = CancellationSource::new();
    let ticks = futures::stream::iter(1..).take_until_cancelled(source.token());
    let mut ticks = pin!(ticks);
    futures::executor::block_on(async {
        while let Some(tick) = ticks.next().await {
            println!("tick {tick}");
            if tick == 3 {
                source.cancel(); // e.g. the subscriber went away
            }
        }
    });
    println!("the stream ended on cancellation");
}
