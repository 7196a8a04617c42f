//! One change to the registry, as the audit trail records it.

use serde::Serialize;

use super::PortRange;

/// One change to the registry, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    TypeAllocated {
        service_type: String,
        ranges: Vec<PortRange>,
        placement: &'static str,
        chunk: u16,
    },
    TypeGrew {
        service_type: String,
        ranges: Vec<PortRange>,
        placement: &'static str,
        chunk: u16,
    },
    TypeAdded {
        service_type: String,
        ranges: Vec<PortRange>,
    },
    TypeEdited {
        service_type: String,
        ranges: Vec<PortRange>,
        /// The ranges before the edit.
        from_ranges: Vec<PortRange>,
    },
    TypeRemoved {
        service_type: String,
        ranges: Vec<PortRange>,
    },
    InstanceAssigned {
        service_type: String,
        instance: String,
        port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
    /// An instance left outside its type's ranges by a hand edit (or sharing a port with
    /// another instance) was given a port inside them.
    InstanceMoved {
        service_type: String,
        instance: String,
        from: u16,
        port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
    InstanceReleased {
        service_type: String,
        instance: String,
        port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
    /// An allocation that was refused (full type, no room, unknown type).
    AllocationFailed {
        service_type: String,
        instance: String,
        error: String,
    },
    RuleChanged {
        pattern: String,
    },
    LeaseTaken {
        service_type: String,
        instance: String,
        port: u16,
        lease_pid: u32,
    },
    LeaseEnded {
        service_type: String,
        instance: String,
        port: u16,
        lease_pid: u32,
    },
    /// `gc` dropped something; the event names what.
    Gc {
        service_type: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        reason: String,
    },
    ConfigChanged {
        key: String,
        value: String,
    },
}

impl Event {
    /// Every event's name, as [`Event::name`] gives it.
    pub const NAMES: [&'static str; 14] = [
        "TYPE_ALLOCATED",
        "TYPE_GREW",
        "TYPE_ADDED",
        "TYPE_EDITED",
        "TYPE_REMOVED",
        "INSTANCE_ASSIGNED",
        "INSTANCE_MOVED",
        "INSTANCE_RELEASED",
        "ALLOCATION_FAILED",
        "RULE_CHANGED",
        "LEASE_TAKEN",
        "LEASE_ENDED",
        "GC",
        "CONFIG_CHANGED",
    ];

    /// The event's name in the audit trail and the metrics (`TYPE_ALLOCATED`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::TypeAllocated { .. } => "TYPE_ALLOCATED",
            Self::TypeGrew { .. } => "TYPE_GREW",
            Self::TypeAdded { .. } => "TYPE_ADDED",
            Self::TypeEdited { .. } => "TYPE_EDITED",
            Self::TypeRemoved { .. } => "TYPE_REMOVED",
            Self::InstanceAssigned { .. } => "INSTANCE_ASSIGNED",
            Self::InstanceMoved { .. } => "INSTANCE_MOVED",
            Self::InstanceReleased { .. } => "INSTANCE_RELEASED",
            Self::AllocationFailed { .. } => "ALLOCATION_FAILED",
            Self::RuleChanged { .. } => "RULE_CHANGED",
            Self::LeaseTaken { .. } => "LEASE_TAKEN",
            Self::LeaseEnded { .. } => "LEASE_ENDED",
            Self::Gc { .. } => "GC",
            Self::ConfigChanged { .. } => "CONFIG_CHANGED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each event: `name()`, the trail's `event` field and [`Event::NAMES`] agree.
    #[test]
    fn every_event_is_named_once_and_as_the_trail_writes_it() {
        let s = || "x".to_owned();
        let r = || vec![PortRange::new(1, 2)];
        let all = [
            Event::TypeAllocated {
                service_type: s(),
                ranges: r(),
                placement: "after",
                chunk: 2,
            },
            Event::TypeGrew {
                service_type: s(),
                ranges: r(),
                placement: "after",
                chunk: 2,
            },
            Event::TypeAdded {
                service_type: s(),
                ranges: r(),
            },
            Event::TypeEdited {
                service_type: s(),
                ranges: r(),
                from_ranges: r(),
            },
            Event::TypeRemoved {
                service_type: s(),
                ranges: r(),
            },
            Event::InstanceAssigned {
                service_type: s(),
                instance: s(),
                port: 1,
                workspace: None,
            },
            Event::InstanceMoved {
                service_type: s(),
                instance: s(),
                from: 1,
                port: 2,
                workspace: None,
            },
            Event::InstanceReleased {
                service_type: s(),
                instance: s(),
                port: 1,
                workspace: None,
            },
            Event::AllocationFailed {
                service_type: s(),
                instance: s(),
                error: s(),
            },
            Event::RuleChanged { pattern: s() },
            Event::LeaseTaken {
                service_type: s(),
                instance: s(),
                port: 1,
                lease_pid: 1,
            },
            Event::LeaseEnded {
                service_type: s(),
                instance: s(),
                port: 1,
                lease_pid: 1,
            },
            Event::Gc {
                service_type: s(),
                instance: None,
                port: None,
                reason: s(),
            },
            Event::ConfigChanged {
                key: s(),
                value: s(),
            },
        ];
        let names: Vec<&str> = all.iter().map(Event::name).collect();
        assert_eq!(names, Event::NAMES);
        for e in &all {
            assert_eq!(serde_json::to_value(e).unwrap()["event"], e.name());
        }
    }
}
