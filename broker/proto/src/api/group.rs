//! Consumer groups: membership, assignment and committed offsets.
//!
//! Assignment is computed by the coordinator on the broker with the strategy the group
//! agreed on, so every client language gets the same behaviour.

use serde::{Deserialize, Serialize};
