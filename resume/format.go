package resume

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeLine renders v as one journal line: JSON, tab, CRC-32C hex, newline.
func encodeLine(v any) ([]byte, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(js, "\t%08x\n", crc32.Checksum(js, castagnoli)), nil
}

// decodeLine checks one line (without its newline) and unmarshals it into v. The checksum
// is compared as text, so even a flipped case bit in its hex digits is caught.
func decodeLine(line []byte, v any) bool {
	i := bytes.LastIndexByte(line, '\t')
	return i >= 0 &&
		string(line[i+1:]) == fmt.Sprintf("%08x", crc32.Checksum(line[:i], castagnoli)) &&
		json.Unmarshal(line[:i], v) == nil
}

// decodePart reads a part record; a line without its newline is torn, however it ends.
func decodePart(line []byte, complete bool) (Part, bool) {
	var p Part
	ok := complete && decodeLine(line, &p) && p.Number >= 1
	return p, ok
}

// parse reads a journal image. It returns the header, the parts by number (the last
// record of a number wins) and the length of the well-formed prefix: bytes after it are
// a torn tail, records whose append never returned, to be ignored.
func parse(path string, data []byte) (h Header, parts map[int]Part, good int, err error) {
	line, rest, ok := bytes.Cut(data, []byte{'\n'})
	if !ok || !decodeLine(line, &h) {
		return Header{}, nil, 0, fmt.Errorf("%w: %s: unreadable header", ErrCorrupt, path)
	}
	if h.Version != FormatVersion {
		return h, nil, 0, fmt.Errorf("%w: %s was written by journal format version %d, this build reads version %d",
			ErrVersion, path, h.Version, FormatVersion)
	}
	if h.Kind.Job() {
		return h, nil, 0, fmt.Errorf("%w: %s is a directory job's journal, not a transfer's", ErrCorrupt, path)
	}
	parts = map[int]Part{}
	good = len(line) + 1
	for n := 2; len(rest) > 0; n++ {
		line, next, complete := bytes.Cut(rest, []byte{'\n'})
		p, ok := decodePart(line, complete)
		if !ok {
			// Appends are sequential, so damage followed by a good record is not a torn tail.
			for len(next) > 0 {
				line, next, complete = bytes.Cut(next, []byte{'\n'})
				if _, ok := decodePart(line, complete); ok {
					return h, parts, good, fmt.Errorf("%w: %s: damaged record on line %d", ErrCorrupt, path, n)
				}
			}
			break
		}
		parts[p.Number] = p
		good += len(line) + 1
		rest = next
	}
	return h, parts, good, nil
}
