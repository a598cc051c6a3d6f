package transfer

import (
	"context"
	"encoding/xml"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// listDoc writes a ListBucketResult for keys and prefixes in one of the shapes stores
// send: compact (MinIO), indented with a namespace and entity-quoted ETags (AWS, moto),
// with Owner, checksum elements, comments, CDATA and self-closing elements.
func listDoc(style int, keys []minio.ObjectInfo, prefixes []string, truncated bool, token string, encode bool) string {
	var b strings.Builder
	nl := ""
	if style%2 == 1 {
		nl = "\n  "
	}
	esc := func(s string) string {
		if encode {
			return url.QueryEscape(s)
		}
		var e strings.Builder
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` + nl)
	b.WriteString("<Name>bucket</Name>" + nl + "<Prefix></Prefix>" + nl + "<KeyCount>3</KeyCount>" + nl)
	if style == 2 {
		b.WriteString("<!-- a comment <Contents> -->" + nl + "<StartAfter/>" + nl)
	}
	if encode {
		b.WriteString("<EncodingType>url</EncodingType>" + nl)
	}
	fmt.Fprintf(&b, "<IsTruncated>%t</IsTruncated>%s", truncated, nl)
	for _, o := range keys {
		key := "<Key>" + esc(o.Key) + "</Key>"
		if style == 3 && !encode && !strings.Contains(o.Key, "]]>") {
			key = "<Key><![CDATA[" + o.Key + "]]></Key>"
		}
		etag := "&#34;" + o.ETag + "&#34;"
		if style%2 == 1 {
			etag = "&quot;" + o.ETag + "&quot;"
		}
		b.WriteString("<Contents>" + nl + key + nl + "<LastModified>" + o.LastModified.Format("2006-01-02T15:04:05.000Z") + "</LastModified>" + nl +
			"<ETag>" + etag + "</ETag>" + nl + fmt.Sprintf("<Size>%d</Size>", o.Size) + nl)
		if style >= 1 {
			b.WriteString(`<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>x</DisplayName></Owner>` + nl +
				"<ChecksumAlgorithm>CRC32C</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType><RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress></RestoreStatus>" + nl)
		}
		b.WriteString("<StorageClass>" + o.StorageClass + "</StorageClass>" + nl + "</Contents>" + nl)
	}
	for _, p := range prefixes {
		b.WriteString("<CommonPrefixes>" + nl + "<Prefix>" + esc(p) + "</Prefix>" + nl + "</CommonPrefixes>" + nl)
	}
	if token != "" { // never URL-encoded
		var e strings.Builder
		_ = xml.EscapeText(&e, []byte(token))
		b.WriteString("<NextContinuationToken>" + e.String() + "</NextContinuationToken>" + nl)
	}
	b.WriteString("</ListBucketResult>\n")
	return b.String()
}

// minioDecoded is what minio-go makes of doc: the reference decodeListV2 must agree with.
func minioDecoded(t *testing.T, doc string) listV2Page {
	t.Helper()
	var r minio.ListBucketV2Result
	if err := xml.Unmarshal([]byte(doc), &r); err != nil {
		t.Fatalf("encoding/xml: %v\n%s", err, doc)
	}
	p := listV2Page{truncated: r.IsTruncated, next: r.NextContinuationToken}
	for _, o := range r.Contents {
		k := o.Key
		if r.EncodingType == "url" {
			k, _ = url.QueryUnescape(k)
		}
		p.entries = append(p.entries, minio.ObjectInfo{Key: k, ETag: strings.Trim(o.ETag, `"`), Size: o.Size,
			LastModified: o.LastModified.Truncate(time.Millisecond), StorageClass: o.StorageClass})
	}
	for _, c := range r.CommonPrefixes {
		k := c.Prefix
		if r.EncodingType == "url" {
			k, _ = url.QueryUnescape(k)
		}
		p.entries = append(p.entries, minio.ObjectInfo{Key: k})
	}
	return p
}

// awkwardKey is a key of S3's awkward characters: XML's specials, spaces, a plus,
// percent signs, UTF-8 of 2-4 bytes, a tab and a newline.
func awkwardKey(r *rand.Rand) string {
	pieces := []string{"a", "/", "-", ".", " ", "+", "%", "%2F", "&", "<", ">", `"`, "'", "]]>", "é", "日本", "🙂", "\t", "\n", "&amp;", "x"}
	var b strings.Builder
	for range 1 + r.IntN(12) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func TestDecodeListV2AgreesWithEncodingXML(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 12, 3, 10, 4, 5, 123_000_000, time.UTC)
	for i := range 400 {
		var keys []minio.ObjectInfo
		for j := range r.IntN(6) {
			keys = append(keys, minio.ObjectInfo{Key: awkwardKey(r), ETag: fmt.Sprintf("%032x", r.Uint64()), Size: r.Int64N(1 << 40),
				LastModified: base.Add(time.Duration(j) * time.Hour), StorageClass: "STANDARD"})
		}
		var prefixes []string
		for range r.IntN(3) {
			prefixes = append(prefixes, awkwardKey(r)+"/")
		}
		token := ""
		if i%3 == 0 {
			token = "1/" + awkwardKey(r)
		}
		// Text with raw tabs and newlines is what encoding-type=url is for: without it,
		// XML may turn them into spaces, so only encoded documents carry them.
		encode := i%2 == 0
		if !encode {
			for k := range keys {
				keys[k].Key = strings.NewReplacer("\t", "t", "\n", "n").Replace(keys[k].Key)
			}
			for k := range prefixes {
				prefixes[k] = strings.NewReplacer("\t", "t", "\n", "n").Replace(prefixes[k])
			}
			token = strings.NewReplacer("\t", "t", "\n", "n").Replace(token)
		}
		doc := listDoc(i%4, keys, prefixes, token != "", token, encode)
		want := minioDecoded(t, doc)
		got, err := decodeListV2([]byte(doc))
		if err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		if got.truncated != want.truncated || got.next != want.next || !slices.EqualFunc(got.entries, want.entries, sameListed) {
			t.Fatalf("document %d:\n got %+v\nwant %+v\n%s", i, got, want, doc)
		}
	}
}

// TestDecodeListV2ReadsValuesAsEncodingXML: a truncation written "True" or "1", and a size
// with space around it, read as encoding/xml reads them (a "True" read as false
// would end a listing early, and a sync could then delete what it did not see).
func TestDecodeListV2ReadsValuesAsEncodingXML(t *testing.T) {
	doc := listDoc(0, []minio.ObjectInfo{{Key: "k", ETag: "e", Size: 12, LastModified: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}, nil, true, "t", false)
	for _, v := range []string{"True", "1", " true\n"} {
		d := strings.Replace(doc, "<IsTruncated>true<", "<IsTruncated>"+v+"<", 1)
		d = strings.Replace(d, "<Size>12<", "<Size> 12\n<", 1)
		got, err := decodeListV2([]byte(d))
		want := minioDecoded(t, d)
		if err != nil || !got.truncated || got.next != want.next || !slices.EqualFunc(got.entries, want.entries, sameListed) {
			t.Errorf("IsTruncated %q: %+v, %v; want %+v", v, got, err, want)
		}
	}
}

func sameListed(a, b minio.ObjectInfo) bool {
	return a.Key == b.Key && a.ETag == b.ETag && a.Size == b.Size && a.LastModified.Equal(b.LastModified) && a.StorageClass == b.StorageClass
}

func TestDecodeListV2Refuses(t *testing.T) {
	good := listDoc(0, []minio.ObjectInfo{{Key: "k", ETag: "e", Size: 1, LastModified: time.Now()}}, nil, false, "", false)
	for name, doc := range map[string]string{
		"an error answer":     `<?xml version="1.0"?><Error><Code>SlowDown</Code></Error>`,
		"cut short":           good[:len(good)/2],
		"cut inside a tag":    strings.TrimSuffix(good, "</ListBucketResult>\n") + "</ListBucketRes",
		"mismatched elements": strings.Replace(good, "</Key>", "</Size>", 1),
		"a size not a number": strings.Replace(good, "<Size>1</Size>", "<Size>one</Size>", 1),
		"a bad date":          strings.Replace(good, "<LastModified>", "<LastModified>yesterday", 1),
		"an unknown entity":   strings.Replace(good, "<Key>k", "<Key>&nbsp;k", 1),
		"nothing":             "",
		"two roots":           good + good,
		"a truncation unread": strings.Replace(good, "<IsTruncated>false<", "<IsTruncated>maybe<", 1),
	} {
		if _, err := decodeListV2([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// TestPageListerRequests: the request is a signed ListObjectsV2 without fetch-owner, pages
// follow the continuation token, and the store's refusals are minio-go's ErrorResponse,
// judged by Throttled and Transient as every other request's.
func TestPageListerRequests(t *testing.T) {
	var queries []url.Values
	answer := func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		queries = append(queries, q)
		switch q.Get("prefix") {
		case "slow/":
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
		case "bare/":
			w.WriteHeader(http.StatusBadGateway)
		case "missing/":
			w.WriteHeader(http.StatusNotFound)
		case "broken/":
			fmt.Fprint(w, listDoc(0, nil, nil, true, "", false))
		default:
			if q.Get("continuation-token") == "" {
				fmt.Fprint(w, listDoc(0, []minio.ObjectInfo{{Key: "p/a b", ETag: "e1", Size: 1, LastModified: time.Now()}}, []string{"p/d/"}, true, "next one", true))
				return
			}
			fmt.Fprint(w, listDoc(1, []minio.ObjectInfo{{Key: "p/é", ETag: "e2", Size: 2, LastModified: time.Now()}}, nil, false, "", true))
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(answer))
	defer srv.Close()
	core, err := NewClient(ClientConfig{Endpoint: srv.URL, AccessKey: "AKIDTEST", SecretKey: "secret-for-tests", Addressing: AddressingPath})
	if err != nil {
		t.Fatal(err)
	}
	l, err := listerOf(core)
	if err != nil {
		t.Fatal(err)
	}
	list := func(prefix string) ([]string, error) {
		var keys []string
		for o := range l.ListObjects(t.Context(), "bucket", minio.ListObjectsOptions{Prefix: prefix, StartAfter: "p/0", MaxKeys: 7}) {
			if o.Err != nil {
				return keys, o.Err
			}
			keys = append(keys, o.Key)
		}
		return keys, nil
	}
	keys, err := list("p/")
	if want := []string{"p/a b", "p/d/", "p/é"}; err != nil || !slices.Equal(keys, want) {
		t.Fatalf("listing p/: %q, %v; want %q", keys, err, want)
	}
	for i, q := range queries {
		if q.Get("list-type") != "2" || q.Get("encoding-type") != "url" || q.Get("delimiter") != "/" || q.Get("start-after") != "p/0" ||
			q.Get("max-keys") != "7" || q.Has("fetch-owner") || q.Get("X-Amz-Signature") == "" {
			t.Errorf("request %d: query %v", i, q)
		}
	}
	if got := queries[1].Get("continuation-token"); got != "next one" {
		t.Errorf("second page asked with continuation token %q, want the first page's", got)
	}
	if _, err := list("slow/"); !Throttled(err) || Code(err) != "SlowDown" {
		t.Errorf("503 SlowDown: %v, throttled %t", err, Throttled(err))
	}
	if _, err := list("bare/"); !Transient(err) || Throttled(err) {
		t.Errorf("a bare 502: %v, transient %t", err, Transient(err))
	}
	if _, err := list("missing/"); Transient(err) || Code(err) != "NoSuchBucket" {
		t.Errorf("a bare 404: %v, code %q", err, Code(err))
	}
	if _, err := list("broken/"); err == nil || Transient(err) {
		t.Errorf("truncated without a token: %v", err)
	}

	// A listing stopped early closes its channel.
	ctx, cancel := context.WithCancel(t.Context())
	ch := l.ListObjects(ctx, "bucket", minio.ListObjectsOptions{Prefix: "p/"})
	<-ch
	cancel()
	for range ch {
	}
}

// pageListed is a real store listed through pageLister, for the conformance suite.
type pageListed struct{ *minio.Core }

func (p pageListed) ListObjects(ctx context.Context, bucket string, opts minio.ListObjectsOptions) <-chan minio.ObjectInfo {
	return pageLister{p.Client}.ListObjects(ctx, bucket, opts)
}

// TestPageListerConformance runs the conformance suite's listing case (awkward keys, UTF-8
// order, directory markers, pages of 2 and 1,000) on the real stores through pageLister.
func TestPageListerConformance(t *testing.T) {
	stores := testbed.RealStores(t)
	if stores == nil {
		t.Skip(testbed.NoStoresMessage)
	}
	for _, st := range stores {
		t.Run(st.Name, func(t *testing.T) {
			transfertest.RunListing(t, func(t *testing.T) (transfertest.S3, string) { return pageListed{st.Core}, st.NewBucket(t) })
		})
	}
}
