package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
)

// genBlock is the unit of generated data: every block is its own ChaCha8 stream, so any
// range of a generated object can be produced again without the bytes before it.
const genBlock = 64 << 10

// gen is deterministic incompressible data of a given size: gen{seed}.ReadAt(p, off)
// always yields the same bytes. It is the source of every test file and object, and
// what verification compares against.
type gen struct {
	seed uint64
	size int64
}

func (g gen) ReadAt(p []byte, off int64) (int, error) {
	if off >= g.size {
		return 0, io.EOF
	}
	n := 0
	var block [genBlock]byte
	for n < len(p) && off < g.size {
		bi := off / genBlock
		var key [32]byte
		binary.LittleEndian.PutUint64(key[0:], g.seed)
		binary.LittleEndian.PutUint64(key[8:], uint64(bi))
		_, _ = rand.NewChaCha8(key).Read(block[:])
		in := off - bi*genBlock
		end := min(int64(genBlock), g.size-bi*genBlock)
		c := copy(p[n:], block[in:end])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// writeFile writes g to path unless a file of that size is already there (data is
// deterministic, so an existing one is the same).
func writeFile(path string, g gen) error {
	if st, err := os.Stat(path); err == nil && st.Size() == g.size {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.NewSectionReader(g, 0, g.size)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeDir writes n files of size bytes each and returns their MD5s by name.
func writeDir(dir string, n int, size int64, seed uint64) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sums := make(map[string]string, n)
	for i := range n {
		name := fmt.Sprintf("f%05d.bin", i)
		g := gen{seed: seed + uint64(i), size: size}
		buf := make([]byte, size)
		if _, err := g.ReadAt(buf, 0); err != nil && err != io.EOF {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			return nil, err
		}
		s := md5.Sum(buf)
		sums[name] = hex.EncodeToString(s[:])
	}
	return sums, nil
}

// compareReaders reads want and got to the end in step and says where they first differ.
func compareReaders(got io.Reader, want io.ReaderAt, size int64) error {
	const step = 1 << 20
	a, b := make([]byte, step), make([]byte, step)
	var off int64
	for off < size {
		n := int(min(step, size-off))
		if _, err := io.ReadFull(got, a[:n]); err != nil {
			return fmt.Errorf("short read at %d of %d: %w", off, size, err)
		}
		if _, err := want.ReadAt(b[:n], off); err != nil && err != io.EOF {
			return err
		}
		if !bytes.Equal(a[:n], b[:n]) {
			return fmt.Errorf("content differs in [%d, %d)", off, off+int64(n))
		}
		off += int64(n)
	}
	if n, _ := io.CopyN(io.Discard, got, 1); n != 0 {
		return fmt.Errorf("longer than %d bytes", size)
	}
	return nil
}

// verifyObject checks that bucket/key holds exactly want's size bytes of want: all of
// them, or (sampled) 1 MiB at the start, the end and 14 spread offsets.
func verifyObject(ctx context.Context, c *minio.Client, bucket, key string, want io.ReaderAt, size int64, sampled bool) error {
	st, err := c.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("stat %s/%s: %w", bucket, key, err)
	}
	if st.Size != size {
		return fmt.Errorf("%s/%s has %d bytes, want %d", bucket, key, st.Size, size)
	}
	if !sampled {
		obj, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer obj.Close()
		return compareReaders(obj, want, size)
	}
	const span = 1 << 20
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	offs := []int64{0, max(0, size-span)}
	for range 14 {
		offs = append(offs, rng.Int64N(max(1, size-span)))
	}
	for _, off := range offs {
		n := min(span, size-off)
		var o minio.GetObjectOptions
		if err := o.SetRange(off, off+n-1); err != nil {
			return err
		}
		obj, err := c.GetObject(ctx, bucket, key, o)
		if err != nil {
			return err
		}
		err = compareReaders(obj, io.NewSectionReader(want, off, n), n)
		obj.Close()
		if err != nil {
			return fmt.Errorf("range at %d: %w", off, err)
		}
	}
	return nil
}

// verifyFile checks that path holds exactly want.
func verifyFile(path string, want io.ReaderAt, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return compareReaders(f, want, size)
}

// verifyPrefix checks that the objects under prefix are exactly the files with the given
// MD5s (single-PUT ETags are the MD5).
func verifyPrefix(ctx context.Context, c *minio.Client, bucket, prefix string, sums map[string]string, size int64) error {
	seen := 0
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		name := strings.TrimPrefix(o.Key, prefix)
		want, ok := sums[name]
		if !ok {
			return fmt.Errorf("unexpected object %s", o.Key)
		}
		if o.Size != size {
			return fmt.Errorf("%s has %d bytes, want %d", o.Key, o.Size, size)
		}
		if got := strings.Trim(o.ETag, `"`); got != want {
			return fmt.Errorf("%s: ETag %s, want MD5 %s", o.Key, got, want)
		}
		seen++
	}
	if seen != len(sums) {
		return fmt.Errorf("%d objects under %s, want %d", seen, prefix, len(sums))
	}
	return nil
}

// removePrefix deletes every object under prefix and aborts incomplete uploads there.
func removePrefix(ctx context.Context, c *minio.Client, bucket, prefix string) {
	objs := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true})
	for e := range c.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		_ = e
	}
	for u := range c.ListIncompleteUploads(ctx, bucket, prefix, true) {
		if u.Err == nil {
			_ = c.RemoveIncompleteUpload(ctx, bucket, u.Key)
		}
	}
}
