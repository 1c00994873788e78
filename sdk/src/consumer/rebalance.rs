//! [`RebalanceListener`]: what a group consumer tells the application when its
//! partitions change.

use quiver_proto::api::TopicPartition;

/// Called from inside [`Consumer::poll`](crate::Consumer::poll) (and
/// [`Consumer::close`](crate::Consumer::close)) when the group moves partitions, so the
/// application can flush state it keeps per partition. Every method has an empty default.
///
/// Order within one rebalance: `on_revoked` (or `on_lost`) before the member rejoins or
/// gives partitions up, then `on_assigned` once its new partitions have positions. With
/// `enable_auto_commit` the consumer commits the revoked partitions' positions before
/// `on_revoked`; without it, commit after processing each poll's records.
pub trait RebalanceListener: Send {
    /// These partitions are now this member's, in addition to those it kept.
    fn on_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// These partitions are being handed to other members; their positions are already
    /// committed when auto-commit is on.
    fn on_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// The group dropped this member (its session expired or the broker restarted), so
    /// other members may already own these partitions; committing them is no longer
    /// possible. Records read since the last commit will be read again by their new owner.
    fn on_lost(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
}

/// The listener of a consumer that set none.
#[derive(Debug, Default)]
pub(crate) struct NoListener;

impl RebalanceListener for NoListener {}
