package transfer

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// pendingDelete is a destination file the source lacks, deleted once the transfers succeed.
type pendingDelete struct {
	rel  string
	size int64
}

// deletes holds the destination's files the source lacks, in key order, until the
// transfers are done: in memory up to spillAt, then in a temporary file.
type deletes struct {
	spillAt int
	n       int
	mem     []pendingDelete
	f       *os.File
	w       *bufio.Writer
	err     error
}

// add notes a pending delete; false: it could not be kept (err says why).
func (p *deletes) add(rel string, size int64) bool {
	p.n++
	if p.f == nil && len(p.mem) < p.spillAt {
		p.mem = append(p.mem, pendingDelete{rel, size})
		return true
	}
	if p.f == nil {
		if p.f, p.err = os.CreateTemp("", "s3xfer-sync-deletes-*"); p.err != nil {
			return false
		}
		p.w = bufio.NewWriter(p.f)
		for _, d := range p.mem {
			p.write(d)
		}
		p.mem = nil
	}
	p.write(pendingDelete{rel, size})
	return p.err == nil
}

// write appends a record: the key's length and bytes, then the size (keys may hold any
// byte but NUL, newlines included).
func (p *deletes) write(d pendingDelete) {
	b := binary.AppendUvarint(nil, uint64(len(d.rel)))
	b = append(b, d.rel...)
	b = binary.AppendVarint(b, d.size)
	if _, err := p.w.Write(b); err != nil && p.err == nil {
		p.err = err
	}
}

// each yields the pending deletes in the order they were added.
func (p *deletes) each(yield func(pendingDelete) bool) error {
	if p.f == nil {
		for _, d := range p.mem {
			if !yield(d) {
				return nil
			}
		}
		return nil
	}
	if err := p.w.Flush(); err != nil {
		return err
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReader(p.f)
	for range p.n {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("reading back the pending deletes: %w", err)
		}
		key := make([]byte, n)
		if _, err := io.ReadFull(r, key); err != nil {
			return fmt.Errorf("reading back the pending deletes: %w", err)
		}
		size, err := binary.ReadVarint(r)
		if err != nil {
			return fmt.Errorf("reading back the pending deletes: %w", err)
		}
		if !yield(pendingDelete{string(key), size}) {
			return nil
		}
	}
	return nil
}

func (p *deletes) close() {
	if p.f != nil {
		p.f.Close()
		os.Remove(p.f.Name())
	}
}
