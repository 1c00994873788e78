//! Wasm plugin registry: upload, list, describe, remove, test and logs.

use serde::{Deserialize, Serialize};
