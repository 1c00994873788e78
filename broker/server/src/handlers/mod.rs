//! Consumer-group requests, until they move into the service.

pub(crate) mod group;
