//! Time as the core sees it: a duration since an epoch the caller chooses.
//!
//! The core never reads a clock. The tokio driver passes `Instant::now() - start`; the
//! simulator passes its virtual clock. Both are monotonic, which is all the core relies on.

use std::time::Duration;

/// A point in time, measured from the driver's epoch.
pub type Time = Duration;
