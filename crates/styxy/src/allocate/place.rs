//! Where a new range goes: free blocks of the managed span and the placement strategies.
//!
//! All arithmetic is in `u32` so that `end + gap` can never wrap at 65535.

use crate::allocate::Probe;
use crate::model::{Placement, PortRange};

/// An inclusive span of ports in `u32`, used while searching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

/// What to place.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    /// Name of the type the range is for (its category steers `smart`).
    pub name: &'a str,
    pub chunk: u16,
    pub gap: u16,
    pub placement: Placement,
    /// The range must start exactly here (a pinned port); `None` if no such wish.
    pub exact_start: Option<u16>,
    /// Try at or above this port first (a rule's `preferred_range_start`).
    pub min_start: Option<u16>,
}

/// The span auto-allocation may use, and what inside it is off limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub lo: u16,
    pub hi: u16,
    /// The OS ephemeral port range: never placed over.
    pub ephemeral: Option<PortRange>,
}

/// The spans inside `space` where every port is more than `gap` ports away from every
/// existing range, sorted. A chunk that lies wholly inside one of them keeps `gap` free
/// ports between itself and every other range.
pub fn free_blocks(existing: &[PortRange], space: Space, gap: u16) -> Vec<PortRange> {
    let gap = u32::from(gap);
    let mut blocked: Vec<Span> = existing
        .iter()
        .map(|r| Span {
            start: u32::from(r.start).saturating_sub(gap),
            end: u32::from(r.end) + gap,
        })
        .chain(space.ephemeral.map(|e| Span {
            start: e.start.into(),
            end: e.end.into(),
        }))
        .collect();
    blocked.sort_unstable_by_key(|s| s.start);

    let (lo, hi) = (u32::from(space.lo.max(1024)), u32::from(space.hi));
    let mut free = Vec::new();
    let mut cursor = lo;
    for b in blocked {
        if cursor > hi {
            break;
        }
        if b.end < cursor {
            continue;
        }
        if b.start > cursor {
            free.push(Span {
                start: cursor,
                end: (b.start - 1).min(hi),
            });
        }
        cursor = cursor.max(b.end + 1);
    }
    if cursor <= hi {
        free.push(Span {
            start: cursor,
            end: hi,
        });
    }
    free.into_iter()
        .map(|s| PortRange::new(to_port(s.start), to_port(s.end)))
        .collect()
}

fn to_port(p: u32) -> u16 {
    u16::try_from(p).unwrap_or(u16::MAX)
}

/// Finds a range for `want`, or `None` when no free block holds it.
pub fn place(
    existing: &[PortRange],
    category_ranges: &[PortRange],
    space: Space,
    want: Want<'_>,
    probe: &dyn Probe,
) -> Option<PortRange> {
    place_within(existing, existing, category_ranges, space, want, probe)
}

/// [`place`], with `after` and `before` relative to `anchors` (a zone's own ranges) while
/// gaps are kept from every range in `existing`.
pub fn place_within(
    existing: &[PortRange],
    anchors: &[PortRange],
    category_ranges: &[PortRange],
    space: Space,
    want: Want<'_>,
    probe: &dyn Probe,
) -> Option<PortRange> {
    let blocks = free_blocks(existing, space, want.gap);
    let search = Search {
        blocks: &blocks,
        chunk: u32::from(want.chunk.max(1)),
        probe,
    };
    let (lo, hi) = (u32::from(space.lo.max(1024)), u32::from(space.hi));

    if let Some(p) = want.exact_start {
        return search.exact(p.into());
    }
    if let Some(p) = want.min_start
        && let Some(r) = search.up(u32::from(p), hi)
    {
        return Some(r);
    }
    let top = anchors.iter().map(|r| u32::from(r.end)).max();
    let after = || search.up(top.map_or(lo, |t| t + 1), hi);
    let anywhere = || search.up(lo, hi);
    match want.placement {
        Placement::After => after().or_else(anywhere),
        Placement::Before => {
            let lowest = anchors
                .iter()
                .filter(|r| u32::from(r.end) >= lo)
                .map(|r| u32::from(r.start))
                .min();
            match lowest {
                Some(low) if low > lo => search.down(lo, low - 1).or_else(anywhere),
                Some(_) => anywhere(),
                None => anywhere(),
            }
        }
        Placement::Smart => {
            // Next to the same category first: the spec's order (first gap, then category)
            // would never reach the category step, since any room right after a range that
            // is not the highest is itself an interior gap.
            let gap = u32::from(want.gap);
            let beside_category = || {
                category_ranges.iter().find_map(|r| {
                    let s = u32::from(r.end) + gap + 1;
                    search.up(s, hi).filter(|found| u32::from(found.start) == s)
                })
            };
            let interior = || top.and_then(|t| search.up(lo, t));
            beside_category()
                .or_else(interior)
                .or_else(after)
                .or_else(anywhere)
        }
    }
}

struct Search<'a> {
    blocks: &'a [PortRange],
    chunk: u32,
    probe: &'a dyn Probe,
}

impl Search<'_> {
    /// The listening port nearest the top of `[s, e]`, if any.
    fn highest_listener(&self, s: u32, e: u32) -> Option<u32> {
        let range = PortRange::new(to_port(s), to_port(e));
        self.probe.listeners_in(range).last().map(|p| u32::from(*p))
    }

    fn lowest_listener(&self, s: u32, e: u32) -> Option<u32> {
        let range = PortRange::new(to_port(s), to_port(e));
        self.probe
            .listeners_in(range)
            .first()
            .map(|p| u32::from(*p))
    }

    fn range(&self, s: u32) -> PortRange {
        PortRange::new(to_port(s), to_port(s + self.chunk - 1))
    }

    /// The lowest chunk inside a block and inside `[from, to]` with nobody listening.
    fn up(&self, from: u32, to: u32) -> Option<PortRange> {
        for b in self.blocks {
            let (a, e) = (u32::from(b.start).max(from), u32::from(b.end).min(to));
            let mut s = a;
            while s + self.chunk - 1 <= e {
                match self.highest_listener(s, s + self.chunk - 1) {
                    Some(p) => s = p + 1,
                    None => return Some(self.range(s)),
                }
            }
        }
        None
    }

    /// The highest chunk inside a block and inside `[from, to]` with nobody listening.
    fn down(&self, from: u32, to: u32) -> Option<PortRange> {
        for b in self.blocks.iter().rev() {
            let (a, mut e) = (u32::from(b.start).max(from), u32::from(b.end).min(to));
            while e >= a + self.chunk - 1 {
                let s = e + 1 - self.chunk;
                match self.lowest_listener(s, e) {
                    Some(p) => e = p - 1,
                    None => return Some(self.range(s)),
                }
            }
        }
        None
    }

    /// The chunk starting at `s`, if it lies in a block and nobody listens in it.
    fn exact(&self, s: u32) -> Option<PortRange> {
        let e = s + self.chunk - 1;
        let inside = self
            .blocks
            .iter()
            .any(|b| u32::from(b.start) <= s && e <= u32::from(b.end));
        (inside && self.lowest_listener(s, e).is_none()).then(|| self.range(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACE: Space = Space {
        lo: 10000,
        hi: 32767,
        ephemeral: Some(PortRange::new(32768, 60999)),
    };

    fn none(_: u16) -> bool {
        false
    }

    fn want(placement: Placement) -> Want<'static> {
        Want {
            name: "x",
            chunk: 10,
            gap: 10,
            placement,
            exact_start: None,
            min_start: None,
        }
    }

    #[test]
    fn blocks_keep_gaps_and_bounds() {
        let existing = [PortRange::new(10000, 10009), PortRange::new(10040, 10049)];
        assert_eq!(
            free_blocks(&existing, SPACE, 10),
            vec![PortRange::new(10020, 10029), PortRange::new(10060, 32767)]
        );
        // A range at the very top of the port space must not wrap.
        let top = [PortRange::new(65530, 65535)];
        let space = Space {
            lo: 65000,
            hi: 65535,
            ephemeral: None,
        };
        assert_eq!(
            free_blocks(&top, space, 10),
            vec![PortRange::new(65000, 65519)]
        );
    }

    #[test]
    fn before_goes_below_the_lowest() {
        let existing = [PortRange::new(20000, 20009)];
        assert_eq!(
            place(&existing, &[], SPACE, want(Placement::Before), &none),
            Some(PortRange::new(19980, 19989))
        );
    }

    #[test]
    fn listeners_push_the_range_past_them() {
        let busy = |p: u16| p == 10003 || p == 10009 || p == 10015;
        assert_eq!(
            place(&[], &[], SPACE, want(Placement::After), &busy),
            Some(PortRange::new(10016, 10025))
        );
    }

    #[test]
    fn smart_prefers_the_category_neighbour_then_the_first_gap() {
        let existing = [
            PortRange::new(10000, 10009),
            PortRange::new(10040, 10049),
            PortRange::new(10100, 10109),
        ];
        let cat = [PortRange::new(10100, 10109)];
        assert_eq!(
            place(&existing, &cat, SPACE, want(Placement::Smart), &none),
            Some(PortRange::new(10120, 10129))
        );
        assert_eq!(
            place(&existing, &[], SPACE, want(Placement::Smart), &none),
            Some(PortRange::new(10020, 10029))
        );
    }
}
