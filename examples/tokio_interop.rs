//! Recipe 10.9 with tokio-util: bridge tokens both ways (feature
//! `tokio-util`). Each bridge costs one registration and frees it on drop.
//! Run: `cargo run --example tokio_interop --features tokio-util`

use cancel_core::CancellationSource;

fn main() {
    // Ours -> tokio-util, e.g. to call a library that takes tokio's token.
    let source = CancellationSource::new();
    let bridge = source.token().to_tokio();
    let for_library = bridge.token().clone();
    source.cancel();
    println!("tokio-util token cancelled: {}", for_library.is_cancelled());

    // tokio-util -> ours, e.g. a server's shutdown token driving our code.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let bridge = CancellationSource::from_tokio(&shutdown);
    let token = bridge.source().token();
    let _log = token.register(|| println!("shutdown reached cancel-core"));
    shutdown.cancel();
    println!("cancel-core token cancelled: {}", token.is_cancelled());
}
