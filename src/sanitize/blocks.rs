//! Where a large set of literal patterns may occur in a text, found by looking at one block
//! of the text in every few bytes: the learned secret values are hundreds of random strings,
//! too many for a SIMD prefilter, so without this their automaton walked every byte of every
//! string (nearly half the redaction thread's time on a 1 GiB backfill).
//!
//! With blocks of `w` bytes and every pattern at least `2w - 1` long, an occurrence starting
//! at `s` contains the block at the first multiple of `w` from `s`, at pattern offset below
//! `w`. So the first `w` blocks of every pattern go into a Bloom filter, the text's blocks at
//! multiples of `w` are looked up in it, and only the regions around hits need the
//! automaton. Every occurrence lies whole inside the region of its first block; regions that
//! overlap are merged, so no occurrence spans two, and a leftmost-longest search region by
//! region finds what one over the whole text finds.

use std::ops::Range;

/// Blocks wider than this are not used (a block is read as one `u64`).
const MAX_WIDTH: usize = 8;
/// Narrower blocks (patterns shorter than 7 bytes) would save too little: search everything.
const MIN_WIDTH: usize = 4;
/// Filter bits per block inserted (two probes: about 0.5% false hits when full).
const BITS_PER_BLOCK: usize = 32;

/// The filter over a set of patterns (see the module documentation).
#[derive(Debug)]
pub struct Blocks {
    width: usize,
    longest: usize,
    bits: Vec<u64>,
    /// `64 - log2(bit count)`: a hash's top bits index the filter.
    shift: u32,
}

impl Blocks {
    /// The filter over `patterns`, or `None` when they are too short for it (or none).
    pub fn new(patterns: &[&[u8]]) -> Option<Blocks> {
        let shortest = patterns.iter().map(|p| p.len()).min()?;
        let longest = patterns.iter().map(|p| p.len()).max()?;
        let width = shortest.div_ceil(2).min(MAX_WIDTH);
        if width < MIN_WIDTH {
            return None;
        }
        let log2 = (patterns.len() * width * BITS_PER_BLOCK)
            .next_power_of_two()
            .trailing_zeros()
            .max(12);
        let mut blocks = Blocks {
            width,
            longest,
            bits: vec![0; 1 << (log2 - 6)],
            shift: 64 - log2,
        };
        for p in patterns {
            for j in 0..width {
                let (a, b) = blocks.probes(key(&p[j..j + width]));
                blocks.bits[a >> 6] |= 1 << (a & 63);
                blocks.bits[b >> 6] |= 1 << (b & 63);
            }
        }
        Some(blocks)
    }

    fn probes(&self, key: u64) -> (usize, usize) {
        let a = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift;
        let b = (key ^ (key >> 29)).wrapping_mul(0xD6E8_FEB8_6659_FD93) >> self.shift;
        (a as usize, b as usize)
    }

    fn may_hold(&self, key: u64) -> bool {
        let (a, b) = self.probes(key);
        self.bits[a >> 6] & (1 << (a & 63)) != 0 && self.bits[b >> 6] & (1 << (b & 63)) != 0
    }

    /// The regions of `text` that may hold a pattern, in order, disjoint.
    pub fn regions(&self, text: &[u8]) -> Vec<Range<usize>> {
        let w = self.width;
        let mut out: Vec<Range<usize>> = Vec::new();
        let mut at = 0usize;
        for block in text.chunks_exact(w) {
            if self.may_hold(key(block)) {
                let region = at.saturating_sub(w - 1)..(at + self.longest).min(text.len());
                match out.last_mut() {
                    Some(last) if region.start < last.end => last.end = region.end,
                    _ => out.push(region),
                }
            }
            at += w;
        }
        out
    }
}

/// A block as a number (little-endian, zero-padded past its width).
fn key(block: &[u8]) -> u64 {
    let mut b = [0u8; MAX_WIDTH];
    b[..block.len()].copy_from_slice(block);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

    fn automaton(patterns: &[&[u8]]) -> AhoCorasick {
        AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns)
            .unwrap()
    }

    fn by_regions(ac: &AhoCorasick, blocks: &Blocks, text: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for r in blocks.regions(text) {
            for m in ac.find_iter(Input::new(text).range(r)) {
                out.push((m.start(), m.end(), m.pattern().as_usize()));
            }
        }
        out
    }

    fn whole(ac: &AhoCorasick, text: &[u8]) -> Vec<(usize, usize, usize)> {
        ac.find_iter(text)
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect()
    }

    /// A deterministic pseudo-random string of `n` letters and digits.
    fn random(seed: &mut u64, n: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ALPHABET[(*seed >> 33) as usize % ALPHABET.len()]
            })
            .collect()
    }

    #[test]
    fn regions_find_every_occurrence_at_every_alignment() {
        let mut seed = 7;
        for len in [8, 9, 15, 16, 20, 40] {
            let mut owned: Vec<Vec<u8>> =
                (0..300).map(|i| random(&mut seed, len + i % 5)).collect();
            // A pattern that is a prefix of another, and one overlapping another's end.
            let p0 = owned[0].clone();
            owned.push([p0.as_slice(), b"tail-of-it"].concat());
            owned.push([&p0[len / 2..], b"XYZXYZXYZXYZ".as_slice()].concat());
            let patterns: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            let ac = automaton(&patterns);
            let blocks = Blocks::new(&patterns).expect("long enough");
            for shift in 0..17 {
                let mut text = random(&mut seed, shift);
                for (i, p) in patterns.iter().enumerate().step_by(37) {
                    text.extend_from_slice(p);
                    if i % 2 == 0 {
                        text.extend(random(&mut seed, i % 11));
                    }
                }
                text.extend_from_slice(patterns[patterns.len() - 2]);
                text.extend(random(&mut seed, 3000));
                text.extend_from_slice(patterns[5]);
                let expected = whole(&ac, &text);
                assert!(expected.len() > 8, "{len} {shift}");
                assert_eq!(by_regions(&ac, &blocks, &text), expected, "{len} {shift}");
            }
        }
    }

    #[test]
    fn regions_skip_most_of_a_text_without_patterns() {
        let mut seed = 11;
        let owned: Vec<Vec<u8>> = (0..800).map(|_| random(&mut seed, 24)).collect();
        let patterns: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let blocks = Blocks::new(&patterns).unwrap();
        let text = random(&mut seed, 1 << 20);
        let covered: usize = blocks.regions(&text).iter().map(|r| r.len()).sum();
        assert!(covered < text.len() / 10, "{covered}");
    }

    #[test]
    fn short_patterns_get_no_filter() {
        assert!(Blocks::new(&[b"abcdef".as_slice(), b"0123456789".as_slice()]).is_none());
        assert!(Blocks::new(&[]).is_none());
    }
}
