//! Pulsar topic names: parsing, normalization and partitions.
//!
//! Follows `ParseTopicName` of the official Go client (and the C++ client, which agrees on every
//! name accepted here):
//!
//! * A name without `://` is a short name: `topic` means `persistent://public/default/topic`,
//!   `tenant/namespace/topic` means `persistent://tenant/namespace/topic`, and the legacy
//!   `tenant/cluster/namespace/topic` means `persistent://tenant/cluster/namespace/topic`. A short
//!   name is split on every `/`, so any other number of parts is an error.
//! * A name with `://` starts with the domain, `persistent` or `non-persistent`. The rest is split
//!   on its first three `/` at most: three parts are a current (v2) name,
//!   `tenant/namespace/topic`; four parts are a legacy (v1) name,
//!   `tenant/cluster/namespace/topic`, whose topic part keeps any further `/`. (So a v2 topic part
//!   never contains `/`: `persistent://a/b/c/d` is the v1 name with cluster `b`.)
//! * Tenant, cluster, namespace and topic parts must not be empty.
//! * A topic part containing `-partition-` is partition `n` when the text after its last `-`
//!   parses as an integer `n` (as in the Go and C++ clients, so `t-partition-00` is partition 0);
//!   the base topic is the text before the last `-partition-`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::str::FromStr;

/// The tenant of a topic given by its bare local name.
pub const DEFAULT_TENANT: &str = "public";
/// The namespace of a topic given by its bare local name.
pub const DEFAULT_NAMESPACE: &str = "default";
/// What separates a partitioned topic's base name from the partition index.
pub const PARTITION_SUFFIX: &str = "-partition-";

const EXPECTED: &str =
    "expected persistent://tenant/namespace/topic, tenant/namespace/topic or topic";

/// The domain of a topic: whether the broker stores its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// `persistent://`: messages are stored durably by the broker.
    Persistent,
    /// `non-persistent://`: messages are only relayed to connected consumers.
    NonPersistent,
}

impl Domain {
    /// Whether this is the persistent domain.
    pub fn is_persistent(self) -> bool {
        self == Domain::Persistent
    }

    /// The domain as written in a topic name: `persistent` or `non-persistent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Persistent => "persistent",
            Domain::NonPersistent => "non-persistent",
        }
    }

    fn parse(s: &str) -> Option<Domain> {
        match s {
            "persistent" => Some(Domain::Persistent),
            "non-persistent" => Some(Domain::NonPersistent),
            _ => None,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a valid topic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicNameError {
    /// The name is the empty string.
    Empty,
    /// The text before `://` is neither `persistent` nor `non-persistent`.
    BadDomain {
        /// The domain found.
        domain: String,
    },
    /// The name does not have the number of `/`-separated parts of any valid form.
    BadShape {
        /// The name as given.
        name: String,
    },
    /// The tenant, cluster, namespace or topic part is empty.
    EmptyPart {
        /// The name as given.
        name: String,
    },
}

impl fmt::Display for TopicNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicNameError::Empty => write!(f, "empty topic name; {EXPECTED}"),
            TopicNameError::BadDomain { domain } => write!(
                f,
                "invalid topic domain {domain:?}: it must be \"persistent\" or \
                 \"non-persistent\"; {EXPECTED}"
            ),
            TopicNameError::BadShape { name } => {
                write!(f, "invalid topic name {name:?}; {EXPECTED}")
            }
            TopicNameError::EmptyPart { name } => write!(
                f,
                "invalid topic name {name:?}: empty tenant, cluster, namespace or topic part; \
                 {EXPECTED}"
            ),
        }
    }
}

impl std::error::Error for TopicNameError {}

/// A parsed, normalized Pulsar topic name such as `persistent://tenant/namespace/topic`.
///
/// Equality, ordering and hashing are those of [`TopicName::full_name`].
#[derive(Debug, Clone)]
pub struct TopicName {
    full: String,
    domain: Domain,
    tenant: Range<usize>,
    cluster: Option<Range<usize>>,
    namespace: Range<usize>,
    local: Range<usize>,
    partition: Option<u32>,
}

impl TopicName {
    /// Parses and normalizes a topic name in any of the forms the official clients accept (see
    /// the module documentation).
    pub fn parse(name: &str) -> Result<TopicName, TopicNameError> {
        if name.is_empty() {
            return Err(TopicNameError::Empty);
        }
        let bad_shape = || TopicNameError::BadShape {
            name: name.to_owned(),
        };
        let (domain, parts): (Domain, Vec<&str>) = match name.split_once("://") {
            Some((domain, rest)) => {
                let domain = Domain::parse(domain).ok_or_else(|| TopicNameError::BadDomain {
                    domain: domain.to_owned(),
                })?;
                (domain, rest.splitn(4, '/').collect())
            }
            None => {
                let parts: Vec<&str> = name.split('/').collect();
                match parts.len() {
                    1 => (
                        Domain::Persistent,
                        vec![DEFAULT_TENANT, DEFAULT_NAMESPACE, parts[0]],
                    ),
                    3 | 4 => (Domain::Persistent, parts),
                    _ => return Err(bad_shape()),
                }
            }
        };
        let (tenant, cluster, namespace, local) = match parts.as_slice() {
            [tenant, namespace, local] => (*tenant, None, *namespace, *local),
            [tenant, cluster, namespace, local] => (*tenant, Some(*cluster), *namespace, *local),
            _ => return Err(bad_shape()),
        };
        if tenant.is_empty()
            || cluster.is_some_and(str::is_empty)
            || namespace.is_empty()
            || local.is_empty()
        {
            return Err(TopicNameError::EmptyPart {
                name: name.to_owned(),
            });
        }
        Ok(TopicName::build(domain, tenant, cluster, namespace, local))
    }

    /// Assembles a name from parts already known to be non-empty.
    fn build(
        domain: Domain,
        tenant: &str,
        cluster: Option<&str>,
        namespace: &str,
        local: &str,
    ) -> TopicName {
        let mut full = String::with_capacity(
            domain.as_str().len()
                + 3
                + tenant.len()
                + cluster.map_or(0, |c| c.len() + 1)
                + namespace.len()
                + local.len()
                + 2,
        );
        let mut push = |s: &str| {
            let start = full.len();
            full.push_str(s);
            start..full.len()
        };
        push(domain.as_str());
        push("://");
        let tenant_range = push(tenant);
        let cluster_range = cluster.map(|c| {
            push("/");
            push(c)
        });
        push("/");
        let namespace_range = push(namespace);
        push("/");
        let local_range = push(local);
        TopicName {
            full,
            domain,
            tenant: tenant_range,
            cluster: cluster_range,
            namespace: namespace_range,
            local: local_range,
            partition: split_partition(local).map(|(_, index)| index),
        }
    }

    /// The domain: persistent or non-persistent.
    pub fn domain(&self) -> Domain {
        self.domain
    }

    /// The tenant (called property in v1 names).
    pub fn tenant(&self) -> &str {
        &self.full[self.tenant.clone()]
    }

    /// The cluster of a legacy (v1) name `tenant/cluster/namespace/topic`; `None` for v2 names.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.clone().map(|range| &self.full[range])
    }

    /// The namespace part alone, without tenant or cluster.
    pub fn namespace(&self) -> &str {
        &self.full[self.namespace.clone()]
    }

    /// The full namespace as the broker names it: `tenant/namespace`, or
    /// `tenant/cluster/namespace` for a legacy (v1) name.
    pub fn namespace_path(&self) -> &str {
        &self.full[self.tenant.start..self.namespace.end]
    }

    /// The topic part after the namespace, including any `-partition-<n>` suffix.
    pub fn local_name(&self) -> &str {
        &self.full[self.local.clone()]
    }

    /// The partition index when this names one partition of a partitioned topic.
    pub fn partition_index(&self) -> Option<u32> {
        self.partition
    }

    /// Whether this names one partition of a partitioned topic.
    pub fn is_partition(&self) -> bool {
        self.partition.is_some()
    }

    /// The complete normalized name, e.g. `persistent://tenant/namespace/topic`.
    pub fn full_name(&self) -> &str {
        &self.full
    }

    /// The name without its partition suffix: the partitioned topic this partition belongs to,
    /// or a copy of `self` when it is not a partition.
    ///
    /// Only the last suffix is removed: the base of `t-partition-1-partition-2` is
    /// `t-partition-1`.
    pub fn base(&self) -> TopicName {
        match split_partition(self.local_name()) {
            Some((base, _)) => TopicName::build(
                self.domain,
                self.tenant(),
                self.cluster(),
                self.namespace(),
                base,
            ),
            None => self.clone(),
        }
    }

    /// Partition `index` of this topic: `<base full name>-partition-<index>`, where the base is
    /// [`TopicName::base`] (so asking a partition for a partition replaces its index).
    pub fn partition(&self, index: u32) -> TopicName {
        let base = self.base();
        let local = format!("{}{PARTITION_SUFFIX}{index}", base.local_name());
        TopicName::build(
            self.domain,
            self.tenant(),
            self.cluster(),
            self.namespace(),
            &local,
        )
    }

    /// Partition `index` of the partitioned topic `base`; the same as `base.partition(index)`.
    pub fn partitioned_topic_name(base: &TopicName, index: u32) -> TopicName {
        base.partition(index)
    }
}

/// Splits a local name into its base and partition index, when it is a partition: it contains
/// `-partition-`, the text after its last `-` parses as a `u32`, and the base before the last
/// `-partition-` is not empty (so that [`TopicName::base`] is always a valid name).
fn split_partition(local: &str) -> Option<(&str, u32)> {
    let suffix_at = local.rfind(PARTITION_SUFFIX)?;
    let index_at = local.rfind('-')? + 1;
    let index = local[index_at..].parse::<u32>().ok()?;
    if suffix_at == 0 {
        return None;
    }
    Some((&local[..suffix_at], index))
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl FromStr for TopicName {
    type Err = TopicNameError;

    fn from_str(s: &str) -> Result<TopicName, TopicNameError> {
        TopicName::parse(s)
    }
}

impl PartialEq for TopicName {
    fn eq(&self, other: &TopicName) -> bool {
        self.full == other.full
    }
}

impl Eq for TopicName {}

impl Hash for TopicName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.full.hash(state);
    }
}

impl PartialOrd for TopicName {
    fn partial_cmp(&self, other: &TopicName) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TopicName {
    fn cmp(&self, other: &TopicName) -> Ordering {
        self.full.cmp(&other.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> TopicName {
        match TopicName::parse(name) {
            Ok(topic) => topic,
            Err(e) => panic!("{name:?} should parse: {e}"),
        }
    }

    #[test]
    fn bare_local_name_goes_to_public_default() {
        let t = parse("my-topic");
        assert_eq!(t.full_name(), "persistent://public/default/my-topic");
        assert_eq!(t.domain(), Domain::Persistent);
        assert!(t.domain().is_persistent());
        assert_eq!(t.tenant(), "public");
        assert_eq!(t.cluster(), None);
        assert_eq!(t.namespace(), "default");
        assert_eq!(t.namespace_path(), "public/default");
        assert_eq!(t.local_name(), "my-topic");
        assert_eq!(t.partition_index(), None);
        assert!(!t.is_partition());
        assert_eq!(t.to_string(), "persistent://public/default/my-topic");
    }

    #[test]
    fn short_v2_name() {
        let t = parse("tenant/ns/t");
        assert_eq!(t.full_name(), "persistent://tenant/ns/t");
        assert_eq!(t.tenant(), "tenant");
        assert_eq!(t.cluster(), None);
        assert_eq!(t.namespace(), "ns");
        assert_eq!(t.namespace_path(), "tenant/ns");
        assert_eq!(t.local_name(), "t");
    }

    #[test]
    fn short_legacy_v1_name() {
        let t = parse("tenant/cluster/ns/t");
        assert_eq!(t.full_name(), "persistent://tenant/cluster/ns/t");
        assert_eq!(t.tenant(), "tenant");
        assert_eq!(t.cluster(), Some("cluster"));
        assert_eq!(t.namespace(), "ns");
        assert_eq!(t.namespace_path(), "tenant/cluster/ns");
        assert_eq!(t.local_name(), "t");
    }

    #[test]
    fn full_v2_name() {
        let t = parse("persistent://tenant/ns/t");
        assert_eq!(t.full_name(), "persistent://tenant/ns/t");
        assert_eq!(t, parse("tenant/ns/t"));
        assert_eq!(t.namespace_path(), "tenant/ns");
        assert_eq!(t.cluster(), None);
    }

    #[test]
    fn full_v1_name() {
        let t = parse("persistent://tenant/cluster/ns/t");
        assert_eq!(t.cluster(), Some("cluster"));
        assert_eq!(t.namespace(), "ns");
        assert_eq!(t.namespace_path(), "tenant/cluster/ns");
        assert_eq!(t.local_name(), "t");
    }

    #[test]
    fn non_persistent() {
        let t = parse("non-persistent://tenant/ns/t");
        assert_eq!(t.domain(), Domain::NonPersistent);
        assert!(!t.domain().is_persistent());
        assert_eq!(t.domain().to_string(), "non-persistent");
        assert_eq!(t.full_name(), "non-persistent://tenant/ns/t");
        let p = t.partition(3);
        assert_eq!(p.full_name(), "non-persistent://tenant/ns/t-partition-3");
        assert_eq!(p.domain(), Domain::NonPersistent);
    }

    #[test]
    fn slashes_after_the_fourth_part_stay_in_the_local_name() {
        // Like Go's SplitN(rest, "/", 4): a fourth part makes the name v1, and everything after
        // the third slash is the local name.
        let t = parse("persistent://tenant/cluster/ns/some/name/xyz//");
        assert_eq!(t.cluster(), Some("cluster"));
        assert_eq!(t.namespace(), "ns");
        assert_eq!(t.local_name(), "some/name/xyz//");
        assert_eq!(
            t.full_name(),
            "persistent://tenant/cluster/ns/some/name/xyz//"
        );

        // A slash in what looks like a v2 local name makes it v1.
        let t = parse("persistent://tenant/ns/a/b");
        assert_eq!(t.cluster(), Some("ns"));
        assert_eq!(t.namespace(), "a");
        assert_eq!(t.local_name(), "b");

        let t = parse("non-persistent://t/c/n/x/y-partition-4");
        assert_eq!(t.local_name(), "x/y-partition-4");
        assert_eq!(t.partition_index(), Some(4));
        assert_eq!(t.base().local_name(), "x/y");
    }

    #[test]
    fn partitions() {
        let t = parse("persistent://tenant/ns/t-partition-7");
        assert_eq!(t.partition_index(), Some(7));
        assert!(t.is_partition());
        assert_eq!(t.local_name(), "t-partition-7");
        let base = t.base();
        assert_eq!(base.full_name(), "persistent://tenant/ns/t");
        assert!(!base.is_partition());
        assert_eq!(base.partition(7), t);
        assert_eq!(TopicName::partitioned_topic_name(&base, 7), t);
        // Asking a partition for a partition replaces the index.
        assert_eq!(
            t.partition(2).full_name(),
            "persistent://tenant/ns/t-partition-2"
        );
        assert_eq!(
            parse("t").partition(0).full_name(),
            "persistent://public/default/t-partition-0"
        );
        assert_eq!(
            parse("a/c/n/t").partition(1).full_name(),
            "persistent://a/c/n/t-partition-1"
        );
        // The base of a non-partition is itself.
        assert_eq!(base.base(), base);
    }

    #[test]
    fn partition_index_quirks() {
        // The index is whatever follows the last '-', as in the Go and C++ clients.
        let t = parse("x-partition-00");
        assert_eq!(t.partition_index(), Some(0));
        assert_eq!(t.base().local_name(), "x");
        let t = parse("x-partition--2");
        assert_eq!(t.partition_index(), Some(2));
        assert_eq!(t.base().local_name(), "x");
        // Not a number after the last '-': not a partition, and no base to strip.
        for name in [
            "x-partition-abc",
            "x-partition-",
            "x-partition-1a",
            "x-partition-1-b",
            "x-partition-99999999999",
        ] {
            let t = parse(name);
            assert_eq!(t.partition_index(), None, "{name}");
            assert!(!t.is_partition(), "{name}");
            assert_eq!(t.base(), t, "{name}");
        }
        // No "-partition-" at all: a trailing number means nothing.
        assert_eq!(parse("x-5").partition_index(), None);
        assert_eq!(parse("xpartition-5").partition_index(), None);
        // Nothing before the suffix: not a partition, so the base stays a valid name.
        let t = parse("-partition-5");
        assert_eq!(t.partition_index(), None);
        assert_eq!(t.base(), t);
    }

    #[test]
    fn partition_of_a_partition() {
        let t = parse("t-partition-1-partition-2");
        assert_eq!(t.partition_index(), Some(2));
        let base = t.base();
        assert_eq!(base.local_name(), "t-partition-1");
        assert_eq!(base.partition_index(), Some(1));
        assert_eq!(base.base().local_name(), "t");
        assert_eq!(t.partition(5).local_name(), "t-partition-1-partition-5");
    }

    #[test]
    fn errors() {
        assert_eq!(TopicName::parse(""), Err(TopicNameError::Empty));
        assert_eq!(
            TopicName::parse("http://tenant/ns/t"),
            Err(TopicNameError::BadDomain {
                domain: "http".into()
            })
        );
        assert_eq!(
            TopicName::parse("://tenant/ns/t"),
            Err(TopicNameError::BadDomain { domain: "".into() })
        );
        assert_eq!(
            TopicName::parse("Persistent://tenant/ns/t"),
            Err(TopicNameError::BadDomain {
                domain: "Persistent".into()
            })
        );
        for name in [
            "tenant/t",
            "a/b/c/d/e",
            "/",
            "persistent://",
            "persistent://t",
            "persistent://tenant/ns",
            "non-persistent://tenant",
        ] {
            assert_eq!(
                TopicName::parse(name),
                Err(TopicNameError::BadShape { name: name.into() }),
                "{name}"
            );
        }
        for name in [
            "/ns/t",
            "tenant//t",
            "tenant/ns/",
            "//",
            "a//n/t",
            "persistent:///ns/t",
            "persistent://tenant//t",
            "persistent://tenant/ns/",
            "persistent://tenant/cluster/ns/",
            "persistent://tenant//ns/t",
        ] {
            assert_eq!(
                TopicName::parse(name),
                Err(TopicNameError::EmptyPart { name: name.into() }),
                "{name}"
            );
        }
    }

    #[test]
    fn error_messages_say_what_is_valid() {
        let expected =
            "expected persistent://tenant/namespace/topic, tenant/namespace/topic or topic";
        for err in [
            TopicNameError::Empty,
            TopicNameError::BadDomain {
                domain: "http".into(),
            },
            TopicNameError::BadShape { name: "a/b".into() },
            TopicNameError::EmptyPart {
                name: "a//c".into(),
            },
        ] {
            let msg = err.to_string();
            assert!(msg.contains(expected), "{msg}");
        }
        let msg = TopicNameError::BadDomain {
            domain: "http".into(),
        }
        .to_string();
        assert!(
            msg.contains("\"http\"") && msg.contains("non-persistent"),
            "{msg}"
        );
        let err: Box<dyn std::error::Error> = Box::new(TopicNameError::Empty);
        assert!(err.to_string().starts_with("empty topic name"));
    }

    #[test]
    fn from_str_equality_and_hash() {
        use std::collections::HashSet;
        let a: TopicName = match "t".parse() {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let b = parse("public/default/t");
        let c = parse("persistent://public/default/t");
        assert_eq!(a, b);
        assert_eq!(b, c);
        let set: HashSet<TopicName> = [a, b, c, parse("u")].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert!(parse("a") < parse("b"));
    }

    #[test]
    fn round_trips_through_full_name() {
        for name in [
            "t",
            "tenant/ns/t-partition-3",
            "tenant/cluster/ns/t",
            "non-persistent://tenant/ns/t",
            "persistent://tenant/cluster/ns/a/b/c",
            "persistent://tenant/ns/t-partition-1-partition-2",
        ] {
            let t = parse(name);
            let again = parse(t.full_name());
            assert_eq!(again, t);
            assert_eq!(again.tenant(), t.tenant());
            assert_eq!(again.cluster(), t.cluster());
            assert_eq!(again.namespace(), t.namespace());
            assert_eq!(again.local_name(), t.local_name());
            assert_eq!(again.partition_index(), t.partition_index());
        }
    }
}
