//! The longest path through a graph of timed steps: the one algorithm
//! behind the forecast's critical path and the drill report's bounds.
//!
//! Steps are given in a topological order (every link points to an earlier
//! step), so one pass finds, for each step, the longest chain ending in it.

use crate::clock::Millis;

/// The longest chain of linked steps, by summed duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Longest {
    /// The chain's summed durations: when its last step finishes, with
    /// every step starting as soon as the steps it links to are done.
    pub total: Millis,
    /// The chain, first step first, as indices into the steps given.
    pub chain: Vec<usize>,
}

/// The longest path over steps `0..durations.len()`, where step `i` waits
/// for each step of `links[i]` (all of them before `i`). Between chains of
/// equal length, the one through the step with the smaller `tie` key wins,
/// at every link and at the end, so the same input always gives the same
/// chain.
///
/// # Panics
/// When a link points to the step itself or to a later one (not a
/// topological order), or `links` and `durations` differ in length.
pub fn longest<K: Ord>(
    durations: &[Millis],
    links: &[Vec<usize>],
    tie: impl Fn(usize) -> K,
) -> Longest {
    assert_eq!(
        durations.len(),
        links.len(),
        "a duration and links per step"
    );
    // For each step: the longest chain ending in it, and its step before.
    let mut ends: Vec<(Millis, Option<usize>)> = Vec::with_capacity(durations.len());
    let best = |candidates: &mut dyn Iterator<Item = usize>, ends: &[(Millis, Option<usize>)]| {
        candidates.max_by(|&a, &b| ends[a].0.cmp(&ends[b].0).then_with(|| tie(b).cmp(&tie(a))))
    };
    for (i, step_links) in links.iter().enumerate() {
        assert!(
            step_links.iter().all(|&j| j < i),
            "step {i} links to a step that is not before it"
        );
        let before = best(&mut step_links.iter().copied(), &ends);
        let start = before.map_or(0, |j| ends[j].0);
        ends.push((start + durations[i].max(0), before));
    }
    let mut at = best(&mut (0..durations.len()), &ends);
    let total = at.map_or(0, |i| ends[i].0);
    let mut chain = Vec::new();
    while let Some(i) = at {
        chain.push(i);
        at = ends[i].1;
    }
    chain.reverse();
    Longest { total, chain }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_chain_wins_and_ties_go_to_the_smaller_key() {
        //   0 (5) ─┬─ 2 (10) ─ 3 (1)
        //   1 (7) ─┘
        let durations = [5, 7, 10, 1];
        let links = [vec![], vec![], vec![0, 1], vec![2]];
        let path = longest(&durations, &links, |i| i);
        assert_eq!(
            path,
            Longest {
                total: 18,
                chain: vec![1, 2, 3]
            }
        );
        // Equal chains: the smaller key, whichever comes first.
        let path = longest(&[4, 4], &[vec![], vec![]], std::cmp::Reverse);
        assert_eq!(path.chain, [1]);
        let path = longest(&[4, 4], &[vec![], vec![]], |i| i);
        assert_eq!(path.chain, [0]);
        assert_eq!(
            longest(&[], &[], |i| i),
            Longest {
                total: 0,
                chain: vec![]
            }
        );
    }

    #[test]
    #[should_panic(expected = "not before it")]
    fn a_link_forward_is_refused() {
        longest(&[1, 1], &[vec![1], vec![]], |i| i);
    }
}
