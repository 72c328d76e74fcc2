//! sd_notify: readiness, status and a watchdog that pings only while the pipeline makes progress.
