//! The pure allocator on large registries: placement of a new range among N ranges, and a
//! whole allocation (new type + slot). No I/O: nothing listens (the probe says no).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use styxy::allocate::{self, Machine, Request, place};
use styxy::model::{Instance, Origin, Placement, PortRange, Registry, ServiceType};

fn idle(_: u16) -> bool {
    false
}

/// A registry with `n` auto-allocated 2-port types packed from 10000 with a gap of 1.
fn registry(n: u32) -> Registry {
    let mut reg = Registry::default();
    reg.settings.chunk_size = 2;
    reg.settings.gap_size = 1;
    reg.settings.max_port = Some(65000);
    for i in 0..n {
        let start = u16::try_from(10000 + i * 3).unwrap();
        let mut t = ServiceType::new(vec![PortRange::new(start, start + 1)], Origin::Auto);
        t.instances
            .insert("/ws".into(), Instance::new("/ws", start, Some("/ws"), None));
        reg.types.insert(format!("type-{i}"), t);
    }
    reg
}

fn placement(c: &mut Criterion) {
    let mut group = c.benchmark_group("place");
    for n in [100u32, 1_000, 10_000] {
        let reg = registry(n);
        let existing: Vec<PortRange> = reg.all_ranges().into_iter().map(|(r, _)| r).collect();
        let space = place::Space {
            lo: 10000,
            hi: 65000,
            ephemeral: None,
        };
        for placement in [Placement::After, Placement::Smart] {
            let want = place::Want {
                name: "new",
                chunk: 2,
                gap: 1,
                placement,
                exact_start: None,
                min_start: None,
            };
            group.bench_with_input(
                BenchmarkId::new(placement.as_str(), n),
                &existing,
                |b, existing| b.iter(|| place::place(black_box(existing), &[], space, want, &idle)),
            );
        }
    }
    group.finish();
}

fn allocation(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocate_new_type");
    for n in [100u32, 1_000, 10_000] {
        let reg = registry(n);
        let machine = Machine {
            ephemeral: || None,
            checkouts_gone: |roots| vec![false; roots.len()],
            probe: &idle,
        };
        group.bench_with_input(BenchmarkId::from_parameter(n), &reg, |b, reg| {
            // By reference, so dropping the 10,000-type clone is not timed.
            b.iter_batched_ref(
                || reg.clone(),
                |reg| {
                    let req = Request {
                        service_type: "brand-new",
                        instance: "/ws2",
                        ..Request::default()
                    };
                    allocate::allocate(reg, &machine, &req).unwrap()
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, placement, allocation);
criterion_main!(benches);
