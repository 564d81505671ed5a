//! A set of neighbouring tree nodes: the work of one describe task.

/// Up to [`NodeSet::SPAN`] nodes from `base` on, as a bitmap. In a large divergence the children of
/// sixteen neighbouring nodes differ together, and one task then holds them all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NodeSet {
    base: u32,
    bits: [u64; 4],
}

impl NodeSet {
    /// Nodes one set spans.
    pub(super) const SPAN: u32 = 256;

    /// The nodes `base + i` for each bit `i` of `mask`.
    pub(super) fn new(base: u32, mask: u16) -> Self {
        let mut set = NodeSet { base, bits: [0; 4] };
        set.add(base, mask);
        set
    }

    /// Adds the nodes `base + i` for each bit `i` of `mask`; false (and nothing added) when they do
    /// not all lie within the set's span.
    pub(super) fn add(&mut self, base: u32, mask: u16) -> bool {
        let fits = base
            .checked_sub(self.base)
            .is_some_and(|off| off.saturating_add(16) <= Self::SPAN);
        if !fits {
            return false;
        }
        let off = base.saturating_sub(self.base);
        for i in (0..16u32).filter(|i| mask & (1 << i) != 0) {
            let at = off.saturating_add(i);
            if let Some(w) = self.bits.get_mut((at / 64) as usize) {
                *w |= 1 << (at % 64);
            }
        }
        true
    }

    /// The lowest node in the set.
    pub(super) fn first(&self) -> Option<u32> {
        let (word, bits) = self.bits.iter().enumerate().find(|(_, &w)| w != 0)?;
        let at = (word as u32)
            .saturating_mul(64)
            .saturating_add(bits.trailing_zeros());
        Some(self.base.saturating_add(at))
    }

    /// Removes `node`.
    pub(super) fn remove(&mut self, node: u32) {
        let at = node.wrapping_sub(self.base);
        if let Some(w) = self.bits.get_mut((at / 64) as usize) {
            *w &= !(1 << (at % 64));
        }
    }

    /// The first node the set can hold: all of its nodes are on one level.
    pub(super) fn base(&self) -> u32 {
        self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_sixteen_blocks_of_children_and_yields_them_in_order() {
        let mut s = NodeSet::new(17, 0b101);
        assert!(s.add(33, 0x8000));
        assert!(s.add(17 + 240, 1));
        assert!(!s.add(17 + 256, 1), "beyond the span");
        assert!(!s.add(1, 1), "before the base");
        let mut seen = std::vec::Vec::new();
        while let Some(n) = s.first() {
            seen.push(n);
            s.remove(n);
        }
        assert_eq!(seen, [17, 19, 48, 257]);
    }
}
