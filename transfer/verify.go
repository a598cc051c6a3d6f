package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/crc64nvme"
	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
)

// sumAlgo is a checksum S3 keeps of objects and of their parts.
type sumAlgo struct {
	name   Checksum // as Result.Checksum names it
	header string   // as x-amz-checksum-algorithm names it
	poly   uint64   // a CRC's reflected polynomial; 0 for a digest, which cannot be combined
	width  int      // a CRC's bits
	hasher func() hash.Hash
}

var (
	castagnoli    = crc32.MakeTable(crc32.Castagnoli)
	algoCRC64NVME = &sumAlgo{ChecksumCRC64NVME, "CRC64NVME", chunk.PolyCRC64NVME, 64, func() hash.Hash { return crc64nvme.New() }}
	algoCRC32C    = &sumAlgo{ChecksumCRC32C, "CRC32C", chunk.PolyCRC32C, 32, func() hash.Hash { return crc32.New(castagnoli) }}
	algoCRC32     = &sumAlgo{ChecksumCRC32, "CRC32", chunk.PolyCRC32, 32, func() hash.Hash { return crc32.NewIEEE() }}
	algoSHA256    = &sumAlgo{ChecksumSHA256, "SHA256", 0, 0, sha256.New}
	algoSHA1      = &sumAlgo{ChecksumSHA1, "SHA1", 0, 0, sha1.New}
	algoMD5       = &sumAlgo{ChecksumMD5, "MD5", 0, 0, md5.New}
)

// combine returns the CRC of a range a followed by a range b of lenB bytes.
func (a *sumAlgo) combine(crcA, crcB []byte, lenB int64) []byte {
	if a.width == 64 {
		return binary.BigEndian.AppendUint64(nil, chunk.CombineCRC(a.poly, 64, binary.BigEndian.Uint64(crcA), binary.BigEndian.Uint64(crcB), lenB))
	}
	c := chunk.CombineCRC(a.poly, 32, uint64(binary.BigEndian.Uint32(crcA)), uint64(binary.BigEndian.Uint32(crcB)), lenB)
	return binary.BigEndian.AppendUint32(nil, uint32(c))
}

// storedValue is the object's value of checksum a, as HEAD returns it.
func storedValue(info minio.ObjectInfo, a *sumAlgo) string {
	switch a {
	case algoCRC64NVME:
		return info.ChecksumCRC64NVME
	case algoCRC32C:
		return info.ChecksumCRC32C
	case algoCRC32:
		return info.ChecksumCRC32
	case algoSHA256:
		return info.ChecksumSHA256
	case algoSHA1:
		return info.ChecksumSHA1
	}
	return ""
}

func partValue(p *minio.ObjectAttributePart, a *sumAlgo) string {
	switch a {
	case algoCRC64NVME:
		return p.ChecksumCRC64NVME
	case algoCRC32C:
		return p.ChecksumCRC32C
	case algoCRC32:
		return p.ChecksumCRC32
	case algoSHA256:
		return p.ChecksumSHA256
	case algoSHA1:
		return p.ChecksumSHA1
	}
	return ""
}

// wholeKind is how the per-range checksums add up to the object's.
type wholeKind int

const (
	wholeNone      wholeKind = iota
	wholeFull                // a CRC of the whole object, combined from the ranges'
	wholeDigest              // a digest of a single-part object fetched as one range: its part check is the whole check
	wholeComposite           // the checksum of the parts' checksums ("...-N")
	wholeETag                // the MD5 of the parts' MD5s ("...-N"), from an ETag
	wholeReadback            // a digest of a single-part object fetched in several ranges: hashed in order by reading back
)

// storedPart is one part of the object as the store keeps it.
type storedPart struct {
	offset, size int64
	want         []byte // the store's checksum of the part; nil if not known
}

// integrity is how a download checks the object against what the store says it is.
type integrity struct {
	algo  *sumAlgo
	kind  wholeKind
	want  []byte       // the whole object's value, raw
	parts []storedPart // the object's layout, where the ranges must follow it
	// inferred: the layout was guessed from part 1 and the parts count (equal parts), so
	// a mismatch may mean another layout as much as damage.
	inferred bool
	why      string // why nothing can be verified, for the notice
}

// learn decides how this download verifies the object: the cheapest checksum the store
// keeps that the ranges can rebuild without a second read.
func (d *download) learn(ctx context.Context) error {
	d.in = integrity{}
	if d.opts.Checksum == ChecksumNone {
		d.in.why = "checksum none"
		return nil
	}
	info := d.info
	multipart := isMultipartETag(info.ETag)
	var composite *sumAlgo // a "...-N" checksum of the parts
	var compositeWant []byte
	compositeParts := 0 // its N, where the store says
	for _, a := range []*sumAlgo{algoCRC64NVME, algoCRC32C, algoCRC32, algoSHA256, algoSHA1} {
		v := storedValue(info, a)
		if v == "" {
			continue
		}
		raw, n, err := decodeStored(v)
		if err != nil {
			d.m.log.Debug("ignoring an unreadable checksum", "algo", a.header, "value", v)
			continue
		}
		isComposite := n > 0 || info.ChecksumMode == "COMPOSITE" || (multipart && info.ChecksumMode != "FULL_OBJECT" && a != algoCRC64NVME)
		switch {
		case !isComposite && a.poly != 0:
			d.in = integrity{algo: a, kind: wholeFull, want: raw}
			return nil
		case !isComposite:
			d.single(a, raw)
			return nil
		case composite == nil:
			composite, compositeWant, compositeParts = a, raw, n
		}
	}
	if !multipart && isMD5ETag(info.ETag) && !encrypted(info.Metadata) {
		raw, _ := hex.DecodeString(info.ETag)
		d.single(algoMD5, raw)
		return nil
	}
	etagWant, etagParts := multipartETag(info.ETag)
	if composite == nil && (etagWant == nil || encrypted(info.Metadata)) {
		d.in.why = "the store keeps no checksum of it"
		if encrypted(info.Metadata) {
			d.in.why = "it is encrypted, so its ETag is not its MD5, and the store keeps no other checksum"
		}
		return nil
	}
	algo := composite
	if algo == nil {
		algo = algoMD5
	}
	parts, inferred, err := d.m.layout(ctx, d.bucket, d.key, d.info, algo)
	if err != nil {
		return err
	}
	switch {
	case parts == nil:
		d.in.why = "the store tells neither its parts nor their sizes"
	case composite != nil && compositeParts > 0 && compositeParts != len(parts):
		d.in.why = fmt.Sprintf("its %s counts %d parts, the store lists %d", composite.header, compositeParts, len(parts))
	case composite != nil:
		d.in = integrity{algo: composite, kind: wholeComposite, want: compositeWant, parts: parts, inferred: inferred}
	case etagParts != len(parts):
		d.in.why = fmt.Sprintf("its ETag counts %d parts, the store lists %d", etagParts, len(parts))
	default:
		d.in = integrity{algo: algoMD5, kind: wholeETag, want: etagWant, parts: parts, inferred: inferred}
	}
	return nil
}

// single verifies a single-part object by a digest of all of it: in the ranges' stream
// when one range fetches it, else by reading it back in order.
func (d *download) single(a *sumAlgo, want []byte) {
	if d.info.Size > 0 && d.info.Size <= d.partSize() {
		d.in = integrity{algo: a, kind: wholeDigest, want: want, parts: []storedPart{{size: d.info.Size, want: want}}}
		return
	}
	d.in = integrity{algo: a, kind: wholeReadback, want: want}
}

func (d *download) partSize() int64 {
	if d.opts.PartSize > 0 {
		return d.opts.PartSize
	}
	return chunk.DefaultPartSize
}

// decodeStored reads a checksum as S3 gives it: base64, with "-N" for a composite.
func decodeStored(v string) (raw []byte, parts int, err error) {
	if i := strings.LastIndexByte(v, '-'); i > 0 {
		if parts, err = strconv.Atoi(v[i+1:]); err != nil {
			return nil, 0, err
		}
		v = v[:i]
	}
	raw, err = base64.StdEncoding.DecodeString(v)
	return raw, parts, err
}

// multipartETag splits an "md5-N" ETag into the raw MD5 of the parts' MD5s and N.
func multipartETag(etag string) ([]byte, int) {
	if !isMultipartETag(etag) {
		return nil, 0
	}
	raw, _ := hex.DecodeString(etag[:32])
	n, _ := strconv.Atoi(etag[33:])
	return raw, n
}

// layout learns the object's parts: from GetObjectAttributes, with the store's checksum
// of each where it keeps one; else from the size of part 1 and the parts count (partNumber GETs), as
// equal parts (every tool uploads so), confirmed by the size of the last. It returns nil
// parts if the store tells neither.
func (m *Manager) layout(ctx context.Context, bucket, key string, info minio.ObjectInfo, a *sumAlgo) ([]storedPart, bool, error) {
	parts, err := m.attributes(ctx, bucket, key, info, a)
	if err == nil && parts != nil {
		return parts, false, nil
	}
	if err != nil {
		// Refused, or answered in a form minio-go cannot read (versitygw's Last-Modified).
		if ctx.Err() != nil || errors.Is(err, ErrSourceChanged) {
			return nil, false, err
		}
		m.log.Debug("GetObjectAttributes failed; learning the parts from partNumber GETs", "err", err)
	}
	first, n, err := m.statPart(ctx, bucket, key, info.ETag, 1)
	if err != nil || n < 2 || first <= 0 {
		return nil, false, fatalRefusal(ctx, err)
	}
	last := info.Size - int64(n-1)*first
	if last <= 0 || last > first {
		return nil, false, nil
	}
	if got, _, err := m.statPart(ctx, bucket, key, info.ETag, n); err != nil || got != last {
		return nil, false, fatalRefusal(ctx, err) // or unequal parts: unknown without a GET per part
	}
	parts = make([]storedPart, n)
	for i := range parts {
		parts[i] = storedPart{offset: int64(i) * first, size: min(first, info.Size-int64(i)*first)}
	}
	return parts, true, nil
}

// fatalRefusal returns err unless it is the store's lasting refusal of a question about
// the layout (InvalidPartNumber, NotImplemented, AccessDenied, ...), which only means
// the layout stays unknown.
func fatalRefusal(ctx context.Context, err error) error {
	var er minio.ErrorResponse
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrSourceChanged) || !errors.As(err, &er) || Transient(err) {
		return err
	}
	return nil
}

// attributes lists the object's parts with GetObjectAttributes, page by page. Nil
// parts, without error, means the store does not list them or lists them inconsistently.
func (m *Manager) attributes(ctx context.Context, bucket, key string, info minio.ObjectInfo, a *sumAlgo) ([]storedPart, error) {
	var parts []storedPart
	var off int64
	marker := 0
	for {
		attrs, err := m.store.GetObjectAttributes(ctx, bucket, key, minio.ObjectAttributesOptions{
			PartNumberMarker: marker, MaxParts: 1000, VersionID: info.VersionID})
		if err != nil {
			return nil, err
		}
		if etag := trimQuotes(attrs.ETag); etag != "" && etag != info.ETag {
			return nil, fmt.Errorf("%w: s3://%s/%s now has ETag %s, not %s", ErrSourceChanged, bucket, key, etag, info.ETag)
		}
		op := attrs.ObjectParts
		for _, p := range op.Parts {
			if p.PartNumber != len(parts)+1 || p.Size <= 0 {
				return nil, nil
			}
			sp := storedPart{offset: off, size: int64(p.Size)}
			if v := partValue(p, a); v != "" {
				if raw, _, err := decodeStored(v); err == nil {
					sp.want = raw
				}
			}
			parts = append(parts, sp)
			off += sp.size
		}
		if !op.IsTruncated || len(op.Parts) == 0 {
			if len(parts) == 0 || len(parts) != op.PartsCount || off != info.Size {
				return nil, nil
			}
			return parts, nil
		}
		marker = op.NextPartNumberMarker
	}
}

// statPart returns the size of part n of the object and the parts count the store gives.
// It asks with a GET, not a HEAD: minio-go's StatObject drops the parts count header. The
// body is not read.
func (m *Manager) statPart(ctx context.Context, bucket, key, etag string, n int) (int64, int, error) {
	opts := minio.GetObjectOptions{PartNumber: n}
	if err := opts.SetMatchETag(etag); err != nil {
		return 0, 0, err
	}
	var size int64
	var count int
	err := m.store.GetObject(ctx, bucket, key, func() (minio.GetObjectOptions, error) { return opts, nil }, func(_ io.Reader, info minio.ObjectInfo, h http.Header) error {
		size = info.Size
		count, _ = strconv.Atoi(h.Get("X-Amz-Mp-Parts-Count"))
		return nil
	})
	if err != nil {
		return 0, 0, m.pinned(ctx, err, bucket, key, etag)
	}
	return size, count, nil
}

// streamed reports whether the bytes are checked as they are written, not read back.
func (in *integrity) streamed() bool {
	return in.algo != nil && in.kind != wholeReadback
}

// hashesRanges reports whether each range is hashed on its own as it is fetched; a
// stream, which writes in order, hashes a digest's parts in order instead.
func (d *download) hashesRanges() bool {
	return d.in.streamed() && (!d.inOrder || d.in.algo.poly != 0 || d.partOf == nil)
}

// planRanges cuts the object into ranges of at most partSize that never straddle a part
// the checksum is kept by. A part kept by a digest, which cannot be combined from its
// ranges', is hashed in order instead (see fetchInPart), or with wholeParts taken whole.
func (d *download) planRanges(partSize int64) {
	d.ranges, d.partOf, d.partRanges = nil, nil, nil
	if d.info.Size == 0 {
		return
	}
	if d.in.parts == nil {
		d.ranges = chunk.Cut(d.info.Size, partSize)
		return
	}
	for i, p := range d.in.parts {
		first := len(d.ranges)
		step := partSize
		if d.wholeParts && d.in.algo.poly == 0 {
			step = p.size
		}
		for _, r := range chunk.Cut(p.size, step) {
			d.ranges = append(d.ranges, chunk.Part{Number: len(d.ranges) + 1, Offset: p.offset + r.Offset, Size: r.Size})
			d.partOf = append(d.partOf, i)
		}
		d.partRanges = append(d.partRanges, [2]int{first, len(d.ranges)})
	}
}

// checks is the state of a download's checks: the checksum of each range as written,
// and which parts have passed theirs.
type checks struct {
	sums    [][]byte     // by range index
	checked []bool       // by part index: its check ran (or passed in an earlier run)
	digests []partDigest // by part index: the digest of a part in several ranges, as it is built
}

// partSum is the checksum of part i from its ranges'.
func (d *download) partSum(i int) []byte {
	r := d.partRanges[i]
	sum := d.ck.sums[r[0]]
	if d.in.algo.poly == 0 { // a digest, whole in its first range's place (see partDigest)
		return sum
	}
	for j := r[0] + 1; j < r[1]; j++ {
		sum = d.in.algo.combine(sum, d.ck.sums[j], d.ranges[j].Size)
	}
	return sum
}

// settle takes range r's checksum and returns the ranges that are now settled: r itself
// when its part has no value of its own to match, else, once the last range of its part
// arrives, all of them, after the part passed its check. A part that fails is fetched
// once more (damage in transit); failing again is ErrIntegrity. Unsettled ranges are
// not journaled, so a resume fetches them again.
func (d *download) settle(ctx context.Context, r chunk.Part, sum []byte, w io.WriterAt) ([]chunk.Part, error) {
	d.mu.Lock()
	d.ck.sums[r.Number-1] = sum
	if d.partOf == nil || !d.in.streamed() {
		d.mu.Unlock()
		return []chunk.Part{r}, nil
	}
	pi := d.partOf[r.Number-1]
	p := d.in.parts[pi]
	if p.want == nil {
		d.mu.Unlock()
		return []chunk.Part{r}, nil
	}
	span := d.partRanges[pi]
	for j := span[0]; j < span[1]; j++ {
		if d.ck.sums[j] == nil {
			d.mu.Unlock()
			return nil, nil
		}
	}
	if d.ck.checked[pi] {
		d.mu.Unlock()
		return nil, nil
	}
	d.ck.checked[pi] = true
	got := d.partSum(pi)
	d.mu.Unlock()
	return d.checkPart(ctx, pi, got, w)
}

// checkPart checks got, the checksum of part pi's bytes, against the store's value, if it
// keeps one, and returns the part's ranges, settled. A part that fails is fetched once
// more (damage in transit); failing again is ErrIntegrity.
func (d *download) checkPart(ctx context.Context, pi int, got []byte, w io.WriterAt) ([]chunk.Part, error) {
	p, span := d.in.parts[pi], d.partRanges[pi]
	if p.want == nil || bytes.Equal(got, p.want) {
		return d.ranges[span[0]:span[1]], nil
	}
	if w == nil { // a stream: its bytes are gone, nothing to fetch again into
		return nil, failed("GetObject", pi+1, d.mismatch("the part", p.want, got, false))
	}
	d.m.log.Warn("a part does not match the store's checksum; fetching it again", "bucket", d.bucket, "key", d.key, "part", pi+1)
	if err := d.refetchPart(ctx, pi, w); err != nil {
		return nil, err
	}
	d.mu.Lock()
	got = d.partSum(pi)
	d.mu.Unlock()
	if !bytes.Equal(got, p.want) {
		return nil, failed("GetObject", pi+1, d.mismatch("the part", p.want, got, true))
	}
	return d.ranges[span[0]:span[1]], nil
}

// refetchPart fetches part pi's ranges once more, one after another, and records their
// checksums: a CRC's per range; a digest's over them all, hashed in order as they stream.
func (d *download) refetchPart(ctx context.Context, pi int, w io.WriterAt) error {
	span := d.partRanges[pi]
	sums := make([][]byte, span[1]-span[0])
	h, release := d.newHash()
	defer release()
	for j := span[0]; j < span[1]; j++ {
		var err error
		if d.in.algo.poly != 0 {
			sums[j-span[0]], err = d.fetchSum(ctx, d.ranges[j], w)
		} else {
			err = d.fetch(ctx, d.ranges[j], w, h)
		}
		if err != nil {
			return err
		}
	}
	if d.in.algo.poly == 0 { // each range counts as the part's digest (see partSum)
		sum := h.Sum(nil)
		for i := range sums {
			sums[i] = sum
		}
	}
	d.mu.Lock()
	copy(d.ck.sums[span[0]:span[1]], sums)
	d.mu.Unlock()
	return nil
}

// mismatch is the ErrIntegrity of what, which had got instead of want.
func (d *download) mismatch(what string, want, got []byte, twice bool) error {
	name := strings.ToUpper(string(d.in.algo.name))
	show := base64.StdEncoding.EncodeToString
	switch {
	case d.in.kind == wholeETag && what == "the object":
		name, show = "ETag (MD5 of the parts' MD5s)", hex.EncodeToString
	}
	over := ""
	if d.in.kind == wholeComposite && what == "the object" {
		over = fmt.Sprintf(" (the %s of its parts' %ss)", name, name)
	}
	var also string
	if twice {
		also = " (fetched twice)"
	}
	if d.in.inferred {
		also += "; its part layout was inferred as parts of equal size"
	}
	return fmt.Errorf("%w: %s has %s %s%s on the store, the bytes received %s%s",
		ErrIntegrity, what, name, show(want), over, show(got), also)
}

// whole computes the object's value from the ranges' checksums.
func (d *download) whole() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.in.kind {
	case wholeFull:
		if len(d.ranges) == 0 {
			return d.in.algo.hasher().Sum(nil)
		}
		sum := d.ck.sums[0]
		for i := 1; i < len(d.ranges); i++ {
			sum = d.in.algo.combine(sum, d.ck.sums[i], d.ranges[i].Size)
		}
		return sum
	case wholeComposite, wholeETag:
		h := d.in.algo.hasher()
		for i := range d.in.parts {
			h.Write(d.partSum(i))
		}
		return h.Sum(nil)
	case wholeDigest:
		return d.partSum(0)
	}
	return nil
}

// checkWhole checks the object's value once every range is in. A mismatch that no part
// check could place fetches every range once more before it fails.
func (d *download) checkWhole(ctx context.Context, w io.WriterAt) error {
	got := d.whole()
	if bytes.Equal(got, d.in.want) {
		return nil
	}
	if w == nil { // a stream: the bytes are gone
		return d.mismatch("the object", d.in.want, got, false)
	}
	d.m.log.Warn("the object does not match the store's checksum; fetching it again", "bucket", d.bucket, "key", d.key)
	units, refetch := d.ranges, func(ctx context.Context, r chunk.Part) error {
		s, err := d.fetchSum(ctx, r, w)
		if err == nil {
			d.mu.Lock()
			d.ck.sums[r.Number-1] = s
			d.mu.Unlock()
		}
		return err
	}
	if d.partRanges != nil && d.in.algo.poly == 0 { // part by part: a digest hashes its part's ranges in order
		units = make([]chunk.Part, len(d.in.parts))
		for i, p := range d.in.parts {
			units[i] = chunk.Part{Number: i + 1, Offset: p.offset, Size: p.size}
		}
		refetch = func(ctx context.Context, u chunk.Part) error { return d.refetchPart(ctx, u.Number-1, w) }
	}
	err := d.m.eachPart(ctx, units, func(chunk.Part) bool { return false }, refetch)
	if err != nil {
		return err
	}
	if got = d.whole(); !bytes.Equal(got, d.in.want) {
		return d.mismatch("the object", d.in.want, got, true)
	}
	return nil
}
