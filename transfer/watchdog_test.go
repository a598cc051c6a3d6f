package transfer

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// kickReader.Seek reports a reader that cannot seek instead of panicking.
func TestKickReaderSeek(t *testing.T) {
	kicks := 0
	k := &kickReader{r: strings.NewReader("abc"), kick: func() { kicks++ }}
	if b, err := io.ReadAll(k); err != nil || string(b) != "abc" || kicks != 1 {
		t.Fatalf("read %q, %v, %d kicks", b, err, kicks)
	}
	if off, err := k.Seek(1, io.SeekStart); err != nil || off != 1 {
		t.Fatalf("Seek on a seekable reader: %d, %v", off, err)
	}
	k = &kickReader{r: io.MultiReader(strings.NewReader("abc")), kick: func() {}}
	if _, err := k.Seek(0, io.SeekStart); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Seek on a reader that cannot seek: %v, want errors.ErrUnsupported", err)
	}
}
