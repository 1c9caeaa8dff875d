//! `rostrum-loadtest`: simulated WHIP publishers, WHEP subscribers and LL-HLS viewers against a
//! running `rostrum serve`, with join time, loss, delay and HLS latency in a JSON report.

pub mod hls;
pub mod ivf;
pub mod media;
pub mod metrics;
pub mod ogg;
pub mod peer;
pub mod run;
pub mod stamp;
pub mod stats;
pub mod viewer;
