//! Stopping a set of services in dependency order, in parallel waves: a
//! member is told to stop once every member that depends on it has been
//! released — told, and down. Counting releases, not "down" states, keeps
//! the order transitive: a dependent that was already down (retrying,
//! say) still holds back what it depends on until what depends on *it* is
//! down too. Used for shutdown (every service) and for the services a
//! reload removes.

#[derive(Debug, Default)]
pub(super) struct Wave {
    member: Vec<bool>,
    /// Per service: dependents in the wave not yet released.
    holding: Vec<u32>,
    told: Vec<bool>,
    released: Vec<bool>,
    /// What each member depends on, among the members.
    deps: Vec<Vec<usize>>,
    /// Members not yet released.
    pub left: usize,
}

impl Wave {
    /// Room for `n` services.
    pub(super) fn grow(&mut self, n: usize) {
        if self.member.len() < n {
            self.member.resize(n, false);
            self.holding.resize(n, 0);
            self.told.resize(n, false);
            self.released.resize(n, false);
            self.deps.resize(n, Vec::new());
        }
    }

    pub(super) fn has(&self, i: usize) -> bool {
        self.member.get(i).copied().unwrap_or(false)
    }

    /// A member not yet released.
    pub(super) fn holds(&self, i: usize) -> bool {
        self.has(i) && !self.released[i]
    }

    /// `i` joins; it holds back each of `deps` until it is released.
    pub(super) fn join(&mut self, i: usize, deps: Vec<usize>) {
        self.grow(i + 1);
        if self.member[i] {
            return;
        }
        for &j in &deps {
            self.grow(j + 1);
            self.holding[j] += 1;
        }
        self.member[i] = true;
        self.deps[i] = deps;
        self.left += 1;
    }

    /// Of `candidates`, the members nothing holds back that were not told
    /// yet: they are told now.
    pub(super) fn tell(&mut self, candidates: impl Iterator<Item = usize>) -> Vec<usize> {
        let mut now = Vec::new();
        for i in candidates {
            if self.has(i) && !self.told[i] && self.holding[i] == 0 {
                self.told[i] = true;
                now.push(i);
            }
        }
        now
    }

    /// `i` is down: if it was told, release it; what it held back and is
    /// now free to stop is returned (and counted as told).
    pub(super) fn release(&mut self, i: usize) -> Vec<usize> {
        if !self.has(i) || !self.told[i] || self.released[i] {
            return Vec::new();
        }
        self.released[i] = true;
        self.left -= 1;
        let deps = std::mem::take(&mut self.deps[i]);
        let mut free = Vec::new();
        for j in deps {
            self.holding[j] = self.holding[j].saturating_sub(1);
            if self.holding[j] == 0 && self.member[j] && !self.told[j] {
                self.told[j] = true;
                free.push(j);
            }
        }
        free
    }
}
