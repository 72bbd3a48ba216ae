//! What every request handler needs: the log, the configuration and how clients reach us.

use kafscale_core::log::LogService;

use crate::config::Config;
use crate::metrics::Metrics;

pub struct Context {
    pub log: LogService,
    pub config: Config,
    /// Host and port returned in Metadata.
    pub advertised: (String, u16),
    pub cluster_id: String,
    pub metrics: Metrics,
}
