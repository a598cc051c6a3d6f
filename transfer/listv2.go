package transfer

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
)

// pageLister lists objects with ListObjectsV2 requests signed by the minio-go client
// (a presigned URL, sent through its own http.Client and transport) and decodes the
// answers with decodeListV2 instead of encoding/xml, which spent 70% of a no-op sync's
// CPU decoding listings (perf, 100,000 objects). Options it does not serve (versions,
// metadata, V1) go to minio-go's lister.
type pageLister struct{ c *minio.Client }

func (l pageLister) ListObjects(ctx context.Context, bucket string, opts minio.ListObjectsOptions) <-chan minio.ObjectInfo {
	if opts.WithVersions || opts.WithMetadata || opts.WithRestoreStatus || opts.Unsorted || opts.UseV1 || opts.ReverseVersions {
		return l.c.ListObjects(ctx, bucket, opts)
	}
	ch := make(chan minio.ObjectInfo, 1)
	go func() {
		defer close(ch)
		send := func(o minio.ObjectInfo) bool {
			select {
			case ch <- o:
				return true
			case <-ctx.Done():
				return false
			}
		}
		var body bytes.Buffer
		token := ""
		for {
			p, err := l.page(ctx, bucket, opts, token, &body)
			if err != nil {
				send(minio.ObjectInfo{Err: err})
				return
			}
			for _, o := range p.entries {
				if !send(o) {
					return
				}
			}
			if !p.truncated {
				return
			}
			if p.next == "" {
				send(minio.ObjectInfo{Err: minio.ErrorResponse{Code: "NotImplemented", StatusCode: http.StatusOK,
					Message: "the store's listing says it is truncated but gives no continuation token"}})
				return
			}
			token = p.next
		}
	}()
	return ch
}

// page requests one page of the listing after token.
func (l pageLister) page(ctx context.Context, bucket string, opts minio.ListObjectsOptions, token string, body *bytes.Buffer) (listV2Page, error) {
	q := url.Values{"list-type": {"2"}, "encoding-type": {"url"}, "prefix": {opts.Prefix}, "delimiter": {"/"}}
	if opts.Recursive {
		q.Set("delimiter", "")
	}
	if opts.StartAfter != "" {
		q.Set("start-after", opts.StartAfter)
	}
	if token != "" {
		q.Set("continuation-token", token)
	}
	if opts.MaxKeys > 0 {
		q.Set("max-keys", strconv.Itoa(opts.MaxKeys))
	}
	u, err := l.c.Presign(ctx, http.MethodGet, bucket, "", time.Hour, q)
	if err != nil {
		return listV2Page{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return listV2Page{}, err
	}
	resp, err := l.c.CredContext().Client.Do(req)
	if err != nil {
		return listV2Page{}, err
	}
	defer resp.Body.Close()
	body.Reset()
	if _, err := body.ReadFrom(resp.Body); err != nil {
		return listV2Page{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return listV2Page{}, errorResponse(resp, body.Bytes(), bucket)
	}
	return decodeListV2(body.Bytes())
}

// errorResponse is the store's refusal as minio-go gives it, so that Code, Transient
// and Throttled judge it alike.
func errorResponse(resp *http.Response, body []byte, bucket string) error {
	er := minio.ErrorResponse{}
	_ = xml.Unmarshal(body, &er) // a bare status from a proxy has no body
	er.StatusCode = resp.StatusCode
	if er.BucketName == "" {
		er.BucketName = bucket
	}
	if er.Code == "" {
		switch resp.StatusCode {
		case http.StatusNotFound:
			er.Code = "NoSuchBucket"
		case http.StatusForbidden:
			er.Code = "AccessDenied"
		default:
			er.Code = strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "")
		}
		er.Message = resp.Status
	}
	return er
}

// listV2Page is one ListObjectsV2 answer: its objects in the order sent, then its
// common prefixes (as minio-go gives them: an ObjectInfo with only Key set).
type listV2Page struct {
	entries   []minio.ObjectInfo
	truncated bool
	next      string
}

// decodeListV2 decodes a ListBucketResult. It reads the elements a listing needs (an
// object's Key, LastModified, ETag, Size and StorageClass, the common prefixes, the
// truncation and continuation token) and skips any other, at any depth; text may be
// escaped or CDATA, element names may carry a namespace prefix.
func decodeListV2(b []byte) (listV2Page, error) {
	var (
		p        listV2Page
		prefixes []minio.ObjectInfo
		path     []string // names of the open elements
		text     []byte   // of the innermost open element
		o        minio.ObjectInfo
		encoded  bool
		root     bool
	)
	s := xmlScanner{b: b}
	for {
		kind, tok, err := s.next()
		if err != nil {
			return listV2Page{}, fmt.Errorf("decoding the store's listing: %w", err)
		}
		switch kind {
		case tokEOF:
			if !root || len(path) != 0 {
				return listV2Page{}, errors.New("decoding the store's listing: it ended before its ListBucketResult did")
			}
			if encoded {
				for _, e := range [][]minio.ObjectInfo{p.entries, prefixes} {
					for i := range e {
						k, err := url.QueryUnescape(e[i].Key)
						if err != nil {
							return listV2Page{}, fmt.Errorf("decoding the store's listing: key %q: %w", e[i].Key, err)
						}
						e[i].Key = k
					}
				}
			}
			p.entries = append(p.entries, prefixes...)
			return p, nil
		case tokText:
			text = append(text, tok...)
		case tokStart:
			name := local(tok)
			if len(path) == 0 {
				if root || name != "ListBucketResult" {
					return listV2Page{}, fmt.Errorf("decoding the store's listing: the answer is %s, not ListBucketResult", name)
				}
				root = true
			}
			path = append(path, name)
			text = text[:0]
			if len(path) == 2 && name == "Contents" {
				o = minio.ObjectInfo{}
			}
		case tokEnd:
			if len(path) == 0 || local(tok) != path[len(path)-1] {
				return listV2Page{}, fmt.Errorf("decoding the store's listing: </%s> closes no open element", tok)
			}
			if err := endListV2(path, text, &p, &prefixes, &o, &encoded); err != nil {
				return listV2Page{}, fmt.Errorf("decoding the store's listing: %w", err)
			}
			path = path[:len(path)-1]
			text = text[:0]
		}
	}
}

// endListV2 takes in the element path ends, whose text is text.
func endListV2(path []string, text []byte, p *listV2Page, prefixes *[]minio.ObjectInfo, o *minio.ObjectInfo, encoded *bool) error {
	name := path[len(path)-1]
	switch len(path) {
	case 2:
		switch name {
		case "Contents":
			p.entries = append(p.entries, *o)
		case "IsTruncated": // as encoding/xml reads a bool: a "True" taken for false would end the listing early
			b, err := strconv.ParseBool(strings.TrimSpace(string(text)))
			if err != nil {
				return fmt.Errorf("IsTruncated %q: %w", text, err)
			}
			p.truncated = b
		case "NextContinuationToken":
			p.next = string(text)
		case "EncodingType":
			*encoded = strings.TrimSpace(string(text)) == "url"
		}
	case 3:
		switch path[1] + "/" + name {
		case "Contents/Key":
			o.Key = string(text)
		case "Contents/ETag":
			o.ETag = trimQuotes(string(text))
		case "Contents/StorageClass":
			o.StorageClass = string(text)
		case "Contents/Size":
			n, err := strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64)
			if err != nil {
				return fmt.Errorf("size %q: %w", text, err)
			}
			o.Size = n
		case "Contents/LastModified":
			t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(text)))
			if err != nil {
				return fmt.Errorf("last modified %q: %w", text, err)
			}
			o.LastModified = t.Truncate(time.Millisecond)
		case "CommonPrefixes/Prefix":
			*prefixes = append(*prefixes, minio.ObjectInfo{Key: string(text)})
		}
	}
	return nil
}

// local is an element's name without its namespace prefix.
func local(name []byte) string {
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	return string(name)
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokStart
	tokEnd
	tokText
)

// xmlScanner splits well-formed XML without a DTD into start tags (attributes
// skipped; a self-closing tag gives its end too), end tags and unescaped text.
// Declarations, processing instructions and comments are skipped.
type xmlScanner struct {
	b       []byte
	i       int
	pending []byte // the end of a self-closing tag
	scratch []byte
}

func (s *xmlScanner) next() (tokKind, []byte, error) {
	if s.pending != nil {
		name := s.pending
		s.pending = nil
		return tokEnd, name, nil
	}
	for s.i < len(s.b) {
		if s.b[s.i] != '<' {
			j := bytes.IndexByte(s.b[s.i:], '<')
			if j < 0 {
				j = len(s.b) - s.i
			}
			raw := s.b[s.i : s.i+j]
			s.i += j
			if bytes.IndexByte(raw, '&') < 0 {
				return tokText, raw, nil
			}
			t, err := unescape(raw, s.scratch[:0])
			s.scratch = t
			return tokText, t, err
		}
		rest := s.b[s.i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			j := bytes.Index(rest, []byte("]]>"))
			if j < 0 {
				return 0, nil, io.ErrUnexpectedEOF
			}
			s.i += j + 3
			return tokText, rest[len("<![CDATA["):j], nil
		case bytes.HasPrefix(rest, []byte("<!--")):
			j := bytes.Index(rest, []byte("-->"))
			if j < 0 {
				return 0, nil, io.ErrUnexpectedEOF
			}
			s.i += j + 3
		case bytes.HasPrefix(rest, []byte("<?")):
			j := bytes.Index(rest, []byte("?>"))
			if j < 0 {
				return 0, nil, io.ErrUnexpectedEOF
			}
			s.i += j + 2
		case bytes.HasPrefix(rest, []byte("<!")):
			j := bytes.IndexByte(rest, '>')
			if j < 0 {
				return 0, nil, io.ErrUnexpectedEOF
			}
			s.i += j + 1
		case bytes.HasPrefix(rest, []byte("</")):
			j := bytes.IndexByte(rest, '>')
			if j < 0 {
				return 0, nil, io.ErrUnexpectedEOF
			}
			s.i += j + 1
			return tokEnd, bytes.TrimSpace(rest[2:j]), nil
		default:
			end, quote := -1, byte(0)
			for j := 1; j < len(rest) && end < 0; j++ {
				switch c := rest[j]; {
				case quote != 0:
					if c == quote {
						quote = 0
					}
				case c == '"' || c == '\'':
					quote = c
				case c == '>':
					end = j
				}
			}
			if end < 0 {
				return 0, nil, io.ErrUnexpectedEOF
			}
			s.i += end + 1
			tag := rest[1:end]
			closed := len(tag) > 0 && tag[len(tag)-1] == '/'
			if closed {
				tag = tag[:len(tag)-1]
			}
			name := tag
			if j := bytes.IndexAny(tag, " \t\r\n"); j >= 0 {
				name = tag[:j]
			}
			if len(name) == 0 {
				return 0, nil, errors.New("a tag without a name")
			}
			if closed {
				s.pending = name
			}
			return tokStart, name, nil
		}
	}
	return tokEOF, nil, nil
}

// unescape appends raw to dst with XML's five entities and character references replaced.
func unescape(raw, dst []byte) ([]byte, error) {
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '&')
		if i < 0 {
			return append(dst, raw...), nil
		}
		dst = append(dst, raw[:i]...)
		raw = raw[i:]
		j := bytes.IndexByte(raw, ';')
		if j < 0 {
			return nil, fmt.Errorf("an unterminated entity in %q", raw)
		}
		ent := string(raw[1:j])
		raw = raw[j+1:]
		switch ent {
		case "lt":
			dst = append(dst, '<')
		case "gt":
			dst = append(dst, '>')
		case "amp":
			dst = append(dst, '&')
		case "quot":
			dst = append(dst, '"')
		case "apos":
			dst = append(dst, '\'')
		default:
			var n uint64
			var err error
			switch {
			case strings.HasPrefix(ent, "#x"):
				n, err = strconv.ParseUint(ent[2:], 16, 32)
			case strings.HasPrefix(ent, "#"):
				n, err = strconv.ParseUint(ent[1:], 10, 32)
			default:
				err = errors.New("unknown")
			}
			if err != nil {
				return nil, fmt.Errorf("entity &%s;: %w", ent, err)
			}
			dst = utf8.AppendRune(dst, rune(n))
		}
	}
	return dst, nil
}
