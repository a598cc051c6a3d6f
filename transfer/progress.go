package transfer

// EventKind says what an Event reports.
type EventKind int

// The events of one transfer, in order: Started, any number of PartDone, then Finished.
// Notice may come at any time.
const (
	Started EventKind = iota
	PartDone
	Finished
	Notice // something the user should know, in Msg: a resume, a restart, a fallback
)

// Event is one step of one transfer. Bytes and Parts count what the store has
// acknowledged, including what was acknowledged before a resume, so a retried or rewound
// part is never counted twice.
type Event struct {
	Kind      EventKind
	Op        string // "upload", "copy" or "download"
	Bucket    string
	Key       string
	Path      string // the local file, if any
	Size      int64  // total bytes; -1 while a stream's size is unknown
	Bytes     int64  // bytes acknowledged so far
	Parts     int    // parts planned; 0 for a single request
	PartsDone int
	Resumed   bool   // Started: the transfer continues an earlier one
	Err       error  // Finished: nil on success
	Msg       string // Notice only
	// Leftover, on a Notice: an incomplete multipart upload may remain on the store that
	// no journal points at (ListIncomplete finds it, Cleanup or Abort removes it).
	Leftover bool
}

// Progress receives the events of every transfer of a Manager. It is called from many
// goroutines at once and must be safe for that; it should return quickly.
type Progress interface {
	Report(Event)
}

// NoProgress discards every event. It is the default.
type NoProgress struct{}

// Report does nothing.
func (NoProgress) Report(Event) {}
