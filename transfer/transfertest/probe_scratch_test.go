package transfertest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func crcB64(b []byte) string {
	c := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, c))
}
func md5B64(b []byte) string { s := md5.Sum(b); return base64.StdEncoding.EncodeToString(s[:]) }

func TestProbeScratch(t *testing.T) {
	ep, ak, sk := os.Getenv("P_EP"), os.Getenv("P_AK"), os.Getenv("P_SK")
	if ep == "" {
		t.Skip()
	}
	c, err := minio.NewCore(ep, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), MaxRetries: 1, BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := fmt.Sprintf("probe%d", os.Getpid())
	if err := c.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	p := func(f string, a ...any) { t.Logf(f, a...) }
	part := bytes.Repeat([]byte("a"), 5<<20)
	small := []byte("hello")
	// 1. crc algo upload, part without crc
	opts := minio.PutObjectOptions{UserMetadata: map[string]string{"x-amz-checksum-algorithm": "CRC32C"}}
	id, err := c.NewMultipartUpload(ctx, b, "k1", opts)
	p("create crc: %v %v", id, err)
	op, err := c.PutObjectPart(ctx, b, "k1", id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{Md5Base64: md5B64(part), DisableContentSha256: true})
	p("part no crc in crc upload: %+v %#v", op, err)
	op, err = c.PutObjectPart(ctx, b, "k1", id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{CustomHeader: map[string][]string{"X-Amz-Checksum-Crc32c": {crcB64(part)}}, DisableContentSha256: true})
	p("part 1 crc: %+v %v", op, err)
	op2, err := c.PutObjectPart(ctx, b, "k1", id, 2, bytes.NewReader(small), int64(len(small)), minio.PutObjectPartOptions{CustomHeader: map[string][]string{"X-Amz-Checksum-Crc32c": {crcB64(small)}}, DisableContentSha256: true})
	p("part with crc: %+v %v", op2, err)
	lp, err := c.ListObjectParts(ctx, b, "k1", id, 0, 10)
	p("list: %+v %v", lp, err)
	ui, err := c.CompleteMultipartUpload(ctx, b, "k1", id, []minio.CompletePart{{PartNumber: 1, ETag: op.ETag}, {PartNumber: 2, ETag: op2.ETag}}, minio.PutObjectOptions{})
	p("complete without part crcs: %+v %v", ui, err)
	ui, err = c.CompleteMultipartUpload(ctx, b, "k1", id, []minio.CompletePart{{PartNumber: 1, ETag: op.ETag, ChecksumCRC32C: crcB64(part)}, {PartNumber: 2, ETag: op2.ETag, ChecksumCRC32C: crcB64(small)}}, minio.PutObjectOptions{})
	p("complete with part crcs: %+v %v", ui, err)
	ui, err = c.CompleteMultipartUpload(ctx, b, "k1", id, []minio.CompletePart{{PartNumber: 1, ETag: op.ETag, ChecksumCRC32C: crcB64(part)}, {PartNumber: 2, ETag: op2.ETag, ChecksumCRC32C: crcB64(small)}}, minio.PutObjectOptions{})
	p("complete again: %+v %v", ui, err)
	// single put with crc
	u, err := c.PutObject(ctx, b, "s", bytes.NewReader(small), 5, md5B64(small), "", minio.PutObjectOptions{UserMetadata: map[string]string{"x-amz-checksum-crc32c": crcB64(small), "x-amz-meta-Foo-bar": "v"}, DisableContentSha256: true, UserTags: map[string]string{"a": "b"}, StorageClass: "STANDARD"})
	p("put: %+v %v", u, err)
	u, err = c.PutObject(ctx, b, "s2", bytes.NewReader(small), 5, "", "", minio.PutObjectOptions{UserMetadata: map[string]string{"x-amz-checksum-crc32c": crcB64(part)}, DisableContentSha256: true})
	p("put bad crc: %+v %v", u, err)
	var e minio.ErrorResponse
	p("err %#v", err)
	_ = e
	u, err = c.PutObject(ctx, b, "s2", bytes.NewReader(small), 5, md5B64(part), "", minio.PutObjectOptions{DisableContentSha256: true})
	p("put bad md5: %#v", err)
	var g minio.GetObjectOptions
	g.SetRange(1, 2)
	g.Set("x-amz-checksum-mode", "ENABLED")
	rc, oi, h, err := c.GetObject(ctx, b, "s", g)
	if err == nil {
		d, _ := io.ReadAll(rc)
		rc.Close()
		p("get range: %q size=%d etag=%s meta=%v um=%v ct=%s sc=%q tags=%v crc=%q\nhdr=%v", d, oi.Size, oi.ETag, oi.Metadata, oi.UserMetadata, oi.ContentType, oi.StorageClass, oi.UserTags, oi.ChecksumCRC32C, h)
	} else {
		p("get err %v", err)
	}
	so, err := c.StatObject(ctx, b, "s", minio.StatObjectOptions{})
	p("stat: size=%d etag=%s um=%v sc=%q tags=%v tc=%d crc=%q err=%v", so.Size, so.ETag, so.UserMetadata, so.StorageClass, so.UserTags, so.UserTagCount, so.ChecksumCRC32C, err)
	so, err = c.StatObject(ctx, b, "k1", minio.StatObjectOptions{})
	p("stat mp: size=%d etag=%s crc=%q err=%v", so.Size, so.ETag, so.ChecksumCRC32C, err)
	var so2 minio.StatObjectOptions
	so2.Set("x-amz-checksum-mode", "ENABLED")
	so, err = c.StatObject(ctx, b, "k1", so2)
	p("stat mp cm: size=%d etag=%s crc=%q mode=%q err=%v", so.Size, so.ETag, so.ChecksumCRC32C, so.ChecksumMode, err)
	// copy with srcopts MatchETag wrong
	ci, err := c.CopyObject(ctx, b, "s", b, "c1", nil, minio.CopySrcOptions{MatchETag: "deadbeef"}, minio.PutObjectOptions{})
	p("copy srcopts matchetag wrong: %+v %v", ci, err)
	ci, err = c.CopyObject(ctx, b, "s", b, "c2", map[string]string{"x-amz-copy-source-if-match": "deadbeef"}, minio.CopySrcOptions{}, minio.PutObjectOptions{})
	p("copy header if-match wrong: %+v %#v", ci, err)
	ci, err = c.CopyObject(ctx, b, "s", b, "c3", map[string]string{"x-amz-metadata-directive": "REPLACE", "Content-Type": "text/x", "x-amz-meta-new": "1"}, minio.CopySrcOptions{}, minio.PutObjectOptions{})
	p("copy replace: %+v %v", ci, err)
	so, err = c.StatObject(ctx, b, "c3", minio.StatObjectOptions{})
	p("stat c3: um=%v ct=%s etag=%s tags=%v", so.UserMetadata, so.ContentType, so.ETag, so.UserTags)
	id2, _ := c.NewMultipartUpload(ctx, b, "k2", minio.PutObjectOptions{})
	cp, err := c.CopyObjectPart(ctx, b, "k1", b, "k2", id2, 1, 0, 5<<20, nil)
	p("copypart: %+v %v", cp, err)
	cp, err = c.CopyObjectPart(ctx, b, "k1", b, "k2", id2, 2, 1, 3, map[string]string{"x-amz-copy-source-if-match": "xx"})
	p("copypart ifmatch bad: %+v %#v", cp, err)
	cp, err = c.CopyObjectPart(ctx, b, "k1", b, "k2", id2, 2, 5<<20, 100, nil)
	p("copypart out of range: %+v %#v", cp, err)
	lu, err := c.ListMultipartUploads(ctx, b, "k", "", "", "", 1)
	p("listuploads: %+v %v", lu, err)
	err = c.AbortMultipartUpload(ctx, b, "k2", id2)
	p("abort %v", err)
	_, err = c.ListObjectParts(ctx, b, "k2", id2, 0, 0)
	p("list after abort %#v", err)
	err = c.AbortMultipartUpload(ctx, b, "k2", id2)
	p("abort again %#v", err)
	_, err = c.StatObject(ctx, "nosuchbucket-xyz", "k", minio.StatObjectOptions{})
	p("stat nobucket %#v", err)
	_, err = c.PutObject(ctx, "nosuchbucket-xyz", "k", bytes.NewReader(small), 5, "", "", minio.PutObjectOptions{})
	p("put nobucket %#v", err)
	_, err = c.StatObject(ctx, b, "nokey", minio.StatObjectOptions{})
	p("stat nokey %#v", err)
	_, _, _, err = c.GetObject(ctx, b, "nokey", minio.GetObjectOptions{})
	p("get nokey %#v", err)
	var g2 minio.GetObjectOptions
	g2.SetMatchETag("abc")
	_, _, _, err = c.GetObject(ctx, b, "s", g2)
	p("get ifmatch %#v", err)
	// complete with small first part
	id3, _ := c.NewMultipartUpload(ctx, b, "k3", minio.PutObjectOptions{})
	a1, _ := c.PutObjectPart(ctx, b, "k3", id3, 1, bytes.NewReader(small), 5, minio.PutObjectPartOptions{})
	a2, _ := c.PutObjectPart(ctx, b, "k3", id3, 2, bytes.NewReader(small), 5, minio.PutObjectPartOptions{})
	_, err = c.CompleteMultipartUpload(ctx, b, "k3", id3, []minio.CompletePart{{PartNumber: 1, ETag: a1.ETag}, {PartNumber: 2, ETag: a2.ETag}}, minio.PutObjectOptions{})
	p("complete small %#v", err)
	_, err = c.CompleteMultipartUpload(ctx, b, "k3", id3, []minio.CompletePart{{PartNumber: 2, ETag: a2.ETag}, {PartNumber: 1, ETag: a1.ETag}}, minio.PutObjectOptions{})
	p("complete order %#v", err)
	_, err = c.CompleteMultipartUpload(ctx, b, "k3", id3, []minio.CompletePart{{PartNumber: 1, ETag: "0123"}}, minio.PutObjectOptions{})
	p("complete bad etag %#v", err)
	_, err = c.CompleteMultipartUpload(ctx, b, "k3", id3, []minio.CompletePart{{PartNumber: 3, ETag: a1.ETag}}, minio.PutObjectOptions{})
	p("complete missing part %#v", err)
	ui, err = c.CompleteMultipartUpload(ctx, b, "k3", id3, []minio.CompletePart{{PartNumber: 2, ETag: a2.ETag}}, minio.PutObjectOptions{})
	p("complete only part 2 %+v %#v", ui, err)
	// part bad crc
	id4, _ := c.NewMultipartUpload(ctx, b, "k4", minio.PutObjectOptions{})
	_, err = c.PutObjectPart(ctx, b, "k4", id4, 1, bytes.NewReader(small), 5, minio.PutObjectPartOptions{CustomHeader: map[string][]string{"X-Amz-Checksum-Crc32c": {crcB64(part)}}, DisableContentSha256: true})
	p("part bad crc %#v", err)
	_, err = c.PutObjectPart(ctx, b, "k4", id4, 1, bytes.NewReader(small), 5, minio.PutObjectPartOptions{Md5Base64: md5B64(part), DisableContentSha256: true})
	p("part bad md5 %#v", err)
	_, err = c.PutObjectPart(ctx, b, "k4", id4, 1, bytes.NewReader(small), 5, minio.PutObjectPartOptions{Sha256Hex: "00000000000000000000000000000000000000000000000000000000000000aa"})
	p("part bad sha256hex %#v", err)
	_, err = c.PutObjectPart(ctx, b, "k4", id4, 1, bytes.NewReader(small), 5, minio.PutObjectPartOptions{Sha256Hex: "00000000000000000000000000000000000000000000000000000000000000aa", DisableContentSha256: true})
	p("part bad sha256hex unsigned %#v", err)
	_, err = c.PutObjectPart(ctx, b, "k4", id4, 1, bytes.NewReader([]byte{1}), 5, minio.PutObjectPartOptions{})
	p("short body: %v", err)
	_, err = c.PutObjectPart(ctx, b, "k4", "bogus-id", 1, bytes.NewReader(small), 5, minio.PutObjectPartOptions{})
	p("part bogus upload %#v", err)
	sh := []byte{1, 2, 3}
	_, err = c.PutObjectPart(ctx, b, "k4", id4, 1, bytes.NewReader(sh), 5, minio.PutObjectPartOptions{})
	p("part short body %#v", err)
	// sha256 checksum header
	op5, err := c.PutObjectPart(ctx, b, "k4", id4, 2, bytes.NewReader(small), 5, minio.PutObjectPartOptions{CustomHeader: map[string][]string{"X-Amz-Checksum-Sha256": {"n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}}, DisableContentSha256: true})
	p("part wrong sha256 checksum: %+v %#v", op5, err)
	c.AbortMultipartUpload(ctx, b, "k4", id4)
}
