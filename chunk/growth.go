package chunk

// Growth is the part-size schedule of a stream whose size is not known in advance: the
// first Every parts are First bytes, and each next run of Every parts is twice the size
// of the one before, up to MaxPartSize. Small streams keep small parts; a long one still
// fits its limit in MaxParts parts. S3 allows parts of different sizes as long as every
// part but the last is at least MinPartSize.
type Growth struct {
	First int64
	Every int
}

// NewGrowth returns the schedule starting at first bytes whose sizes double every tenth
// of maxParts, or sooner if that is needed for maxParts parts to hold limit bytes. With
// first = DefaultPartSize, MaxParts and MaxObjectSize, sizes double every 1,000 parts:
// 16 MiB for the first 15.6 GiB, 32 MiB to 46.9 GiB, 64 MiB to 109 GiB, ..., 4 GiB from
// part 8,001; 5 TiB is reached at part 8,284. With first = MinPartSize they double every
// 997 parts.
func NewGrowth(first int64, maxParts int, limit int64) Growth {
	g := Growth{First: first, Every: max(1, maxParts/10)}
	for g.Every > 1 && g.Capacity(maxParts) < limit {
		g.Every--
	}
	return g
}

// Size returns the size of part n, counted from 1.
func (g Growth) Size(n int) int64 {
	size := g.First
	for tier := (n - 1) / g.Every; tier > 0 && size < MaxPartSize; tier-- {
		size *= 2
	}
	return min(size, max(MaxPartSize, g.First))
}

// Capacity returns how many bytes parts 1 to n hold.
func (g Growth) Capacity(n int) int64 {
	var total int64
	for i := 1; i <= n; i += g.Every {
		total += int64(min(g.Every, n-i+1)) * g.Size(i)
	}
	return total
}
