//! What `list` and the dashboard show, computed once for both: every service type with its
//! ranges, instances and live leases, and the settings in force on this machine.

use serde::Serialize;

use styxy::allocate;
use styxy::model::{InstanceBehavior, PortRange, Registry, ServiceType};

#[derive(Debug, Serialize)]
pub struct Listing<'a> {
    pub service_types: Vec<TypeView<'a>>,
    pub settings: SettingsView,
}

#[derive(Debug, Serialize)]
pub struct TypeView<'a> {
    pub service_type: &'a str,
    pub ranges: &'a [PortRange],
    pub instance_behavior: InstanceBehavior,
    /// `builtin`, `user` or `auto` (auto-allocated).
    pub origin: &'static str,
    pub preferred_ports: &'a [u16],
    pub description: Option<&'a str>,
    /// The zone its ranges were allocated in, if any.
    pub zone: Option<&'a str>,
    pub instances: Vec<InstanceView<'a>>,
    /// Live leases of `cargo styxy run` (leases of dead processes are not shown).
    pub leases: Vec<LeaseView<'a>>,
}

#[derive(Debug, Serialize)]
pub struct InstanceView<'a> {
    pub instance: &'a str,
    pub port: u16,
    pub workspace: Option<&'a str>,
    /// Whether `localhost:PORT` takes connections now, whoever started the server.
    pub listening: bool,
    /// The process listening on it, where the OS tells (our own user's processes); left
    /// out when nothing listens or the OS does not say (40,000 instances of `null` are
    /// 800 KB of a listing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_pid: Option<u32>,
}

/// A live lease of `cargo styxy run`, in `list` and `check` alike.
#[derive(Debug, Serialize)]
pub struct LeaseView<'a> {
    pub port: u16,
    pub pid: u32,
    pub instance: &'a str,
}

#[derive(Debug, Serialize)]
pub struct SettingsView {
    pub min_port: u16,
    /// The effective upper bound (computed from the ephemeral range when not set).
    pub max_port: u16,
    pub chunk_size: u16,
    pub gap_size: u16,
    pub placement: &'static str,
    pub max_instances: u32,
    pub auto_allocate: bool,
    pub audit_max_bytes: u64,
    pub audit_files: u32,
}

/// The settings as in force on this machine.
pub fn settings_view(reg: &Registry) -> SettingsView {
    let space = allocate::space(reg, &styxy::this_machine());
    let s = &reg.settings;
    SettingsView {
        min_port: space.lo,
        max_port: space.hi,
        chunk_size: s.chunk_size,
        gap_size: s.gap_size,
        placement: s.placement.as_str(),
        max_instances: s.max_instances,
        auto_allocate: s.auto_allocate,
        audit_max_bytes: s.audit_max_bytes,
        audit_files: s.audit_files,
    }
}

/// The listing of `reg`: the types `keep` selects, and the settings in force.
pub fn listing<'r>(reg: &'r Registry, keep: impl Fn(&str, &ServiceType) -> bool) -> Listing<'r> {
    let kept: Vec<(&String, &ServiceType)> = reg.types.iter().filter(|(n, t)| keep(n, t)).collect();
    let ports = kept
        .iter()
        .flat_map(|(_, t)| t.instances.values().map(|i| i.port))
        .collect();
    let serving = styxy::probe::serving(&ports, true);
    let service_types = kept
        .into_iter()
        .map(|(name, t)| TypeView {
            service_type: name,
            ranges: &t.ranges,
            instance_behavior: t.instance_behavior,
            origin: t.origin.as_str(),
            preferred_ports: &t.preferred_ports,
            description: t.description.as_deref(),
            zone: t.zone.as_deref(),
            instances: t
                .instances
                .iter()
                .map(|(id, i)| InstanceView {
                    instance: id,
                    port: i.port,
                    workspace: i.workspace(id),
                    listening: serving.contains_key(&i.port),
                    listener_pid: serving.get(&i.port).copied().flatten(),
                })
                .collect(),
            leases: t
                .leases
                .iter()
                .filter(|l| styxy::probe::lease_is_live(l))
                .map(|l| LeaseView {
                    port: l.port,
                    pid: l.pid,
                    instance: &l.instance,
                })
                .collect(),
        })
        .collect();
    Listing {
        service_types,
        settings: settings_view(reg),
    }
}
