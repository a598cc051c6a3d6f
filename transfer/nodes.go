package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// Node is one endpoint of a store that several serve (the nodes of a distributed MinIO,
// the gateways of a Ceph cluster): its URL, for messages, and its client.
type Node struct {
	Endpoint string
	S3       S3
}

// How long a node that failed is put aside: NodeAsideMin after its first failure in a
// row, doubling with each further one up to NodeAsideMax.
const (
	NodeAsideMin = time.Second
	NodeAsideMax = time.Minute
)

// Nodes is an S3 that spreads requests over the nodes of one store. Each request goes to
// the node with the fewest requests in flight (in turn among equals). A node that fails
// a request as a node fails (the connection refused, reset or timed out, no bytes for
// the idle timeout, a 5xx answer that is not throttling) is put aside: the Manager's
// retry policy tries the request again, which goes to another node. The node's pause is
// NodeAsideMin, doubling with each failure in a row up to NodeAsideMax; when it is
// over, the next request goes to the node, and only that one until it is answered. When
// every node is aside, the one back soonest is tried.
//
// Every node must serve the same buckets with the same state, multipart uploads
// included, as the nodes of a distributed MinIO do: the parts of one upload may go to
// different nodes. Nodes is safe for concurrent use.
type Nodes struct {
	log *slog.Logger
	now func() time.Time // replaced in tests

	mu    sync.Mutex
	nodes []*node
	turn  int // where the search for the least busy node starts, in turn
}

type node struct {
	Node
	lister Lister // nil if its S3 cannot list objects

	// Under Nodes.mu:
	inflight           int
	requests, failures int64
	failsInARow        int
	asideUntil         time.Time
	probing            bool // the one request of a node back from aside is in flight
}

// NodeStatus is what Nodes.Status says of one node.
type NodeStatus struct {
	Endpoint string
	Requests int64 // sent to it, failed ones included
	Failures int64 // of them, those that failed as a node fails and put it aside
	Aside    bool  // put aside now
}

// Spread returns an S3 that spreads requests over nodes (see Nodes). log receives a
// note when a node is put aside and when it is back; nil means discard.
func Spread(nodes []Node, log *slog.Logger) (*Nodes, error) {
	if len(nodes) == 0 {
		return nil, errors.New("no nodes to spread requests over")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Nodes{log: log, now: time.Now}
	seen := map[string]bool{}
	for _, nd := range nodes {
		if seen[nd.Endpoint] {
			return nil, fmt.Errorf("endpoint %s is given twice; give each node once", nd.Endpoint)
		}
		seen[nd.Endpoint] = true
		l, _ := listerOf(nd.S3)
		n.nodes = append(n.nodes, &node{Node: nd, lister: l})
	}
	return n, nil
}

// Status says how each node has fared, in the order Spread was given them.
func (n *Nodes) Status() []NodeStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	out := make([]NodeStatus, len(n.nodes))
	for i, c := range n.nodes {
		out[i] = NodeStatus{Endpoint: c.Endpoint, Requests: c.requests, Failures: c.failures, Aside: c.aside(now)}
	}
	return out
}

// aside reports whether c takes no requests now: put aside and not yet back, or back
// with its one probing request still in flight.
func (c *node) aside(now time.Time) bool {
	return c.failsInARow > 0 && (now.Before(c.asideUntil) || c.probing)
}

// pick chooses the node of the next request and counts it in flight.
func (n *Nodes) pick() *node {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	var best *node
	for i := range n.nodes {
		c := n.nodes[(n.turn+i)%len(n.nodes)]
		if c.failsInARow > 0 && !c.aside(now) {
			best = c // back from its pause: probed at once
			break
		}
		if !c.aside(now) && (best == nil || c.inflight < best.inflight) {
			best = c
		}
	}
	if best == nil {
		for _, c := range n.nodes {
			if best == nil || c.asideUntil.Before(best.asideUntil) {
				best = c
			}
		}
	}
	n.turn++
	if best.failsInARow > 0 {
		best.probing = true
	}
	best.inflight++
	best.requests++
	return best
}

// done records how a request sent to c ended, with ctx the request's: c is put aside if
// it failed as a node fails, and is back if it answered. It returns err, saying which
// node failed.
func (n *Nodes) done(ctx context.Context, c *node, err error) error {
	fault := err != nil && nodeFault(ctx, err)
	var er minio.ErrorResponse
	answered := err == nil || (!fault && errors.As(err, &er) && ctx.Err() == nil)
	n.mu.Lock()
	defer n.mu.Unlock()
	c.inflight--
	c.probing = false
	switch {
	case fault:
		c.failures++
		c.failsInARow++
		d := min(NodeAsideMin<<min(c.failsInARow-1, 16), NodeAsideMax)
		c.asideUntil = n.now().Add(d)
		n.log.Warn("endpoint put aside", "endpoint", c.Endpoint, "for", d, "failures in a row", c.failsInARow, "err", err)
		if len(n.nodes) > 1 {
			return &EndpointError{Endpoint: c.Endpoint, Err: err}
		}
	case answered && c.failsInARow > 0:
		c.failsInARow = 0
		n.log.Info("endpoint back", "endpoint", c.Endpoint)
	}
	return err
}

// nodeFault reports whether a request failed because of its node: the node did not
// answer, or answered that it is failing. Throttling is the store's answer that it is
// busy, which every node would give, and a request ctx ended is its caller's doing, not
// the node's, unless the idle watchdog ended it.
func nodeFault(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return errors.Is(context.Cause(ctx), ErrStalled)
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode >= 500 && !Throttled(err)
	}
	return Transient(err)
}

// EndpointError is a request's failure at one node of several (see Nodes): it names the
// endpoint that failed.
type EndpointError struct {
	Endpoint string
	Err      error
}

func (e *EndpointError) Error() string {
	msg := e.Err.Error()
	if strings.Contains(msg, strings.TrimPrefix(strings.TrimPrefix(e.Endpoint, "http://"), "https://")) {
		return msg // net/http's errors name the URL already
	}
	return e.Endpoint + ": " + msg
}

func (e *EndpointError) Unwrap() error { return e.Err }

// call sends one request to the node pick chooses.
func call[T any](n *Nodes, ctx context.Context, fn func(s3 S3) (T, error)) (T, error) {
	c := n.pick()
	v, err := fn(c.S3)
	return v, n.done(ctx, c, err)
}

func (n *Nodes) PutObject(ctx context.Context, bucket, object string, data io.Reader, size int64, md5Base64, sha256Hex string, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	return call(n, ctx, func(s3 S3) (minio.UploadInfo, error) {
		return s3.PutObject(ctx, bucket, object, data, size, md5Base64, sha256Hex, opts)
	})
}

func (n *Nodes) NewMultipartUpload(ctx context.Context, bucket, object string, opts minio.PutObjectOptions) (string, error) {
	return call(n, ctx, func(s3 S3) (string, error) { return s3.NewMultipartUpload(ctx, bucket, object, opts) })
}

func (n *Nodes) PutObjectPart(ctx context.Context, bucket, object, uploadID string, partID int, data io.Reader, size int64, opts minio.PutObjectPartOptions) (minio.ObjectPart, error) {
	return call(n, ctx, func(s3 S3) (minio.ObjectPart, error) {
		return putObjectPart(ctx, s3, bucket, object, uploadID, partID, data, size, opts)
	})
}

func (n *Nodes) ListObjectParts(ctx context.Context, bucket, object, uploadID string, partNumberMarker, maxParts int) (minio.ListObjectPartsResult, error) {
	return call(n, ctx, func(s3 S3) (minio.ListObjectPartsResult, error) {
		return s3.ListObjectParts(ctx, bucket, object, uploadID, partNumberMarker, maxParts)
	})
}

func (n *Nodes) CompleteMultipartUpload(ctx context.Context, bucket, object, uploadID string, parts []minio.CompletePart, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	return call(n, ctx, func(s3 S3) (minio.UploadInfo, error) {
		return s3.CompleteMultipartUpload(ctx, bucket, object, uploadID, parts, opts)
	})
}

func (n *Nodes) AbortMultipartUpload(ctx context.Context, bucket, object, uploadID string) error {
	_, err := call(n, ctx, func(s3 S3) (struct{}, error) {
		return struct{}{}, s3.AbortMultipartUpload(ctx, bucket, object, uploadID)
	})
	return err
}

func (n *Nodes) ListMultipartUploads(ctx context.Context, bucket, prefix, keyMarker, uploadIDMarker, delimiter string, maxUploads int) (minio.ListMultipartUploadsResult, error) {
	return call(n, ctx, func(s3 S3) (minio.ListMultipartUploadsResult, error) {
		return s3.ListMultipartUploads(ctx, bucket, prefix, keyMarker, uploadIDMarker, delimiter, maxUploads)
	})
}

func (n *Nodes) CopyObject(ctx context.Context, srcBucket, srcObject, dstBucket, dstObject string, metadata map[string]string, srcOpts minio.CopySrcOptions, dstOpts minio.PutObjectOptions) (minio.ObjectInfo, error) {
	return call(n, ctx, func(s3 S3) (minio.ObjectInfo, error) {
		return s3.CopyObject(ctx, srcBucket, srcObject, dstBucket, dstObject, metadata, srcOpts, dstOpts)
	})
}

func (n *Nodes) CopyObjectPart(ctx context.Context, srcBucket, srcObject, dstBucket, dstObject, uploadID string, partID int, startOffset, length int64, metadata map[string]string) (minio.CompletePart, error) {
	return call(n, ctx, func(s3 S3) (minio.CompletePart, error) {
		return s3.CopyObjectPart(ctx, srcBucket, srcObject, dstBucket, dstObject, uploadID, partID, startOffset, length, metadata)
	})
}

// GetObject keeps the request in flight on its node until the body is closed: a body
// that fails to arrive is the node's failure as much as a request that fails, and its
// read error names the node as a request's does.
func (n *Nodes) GetObject(ctx context.Context, bucket, object string, opts minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error) {
	c := n.pick()
	body, info, h, err := c.S3.GetObject(ctx, bucket, object, opts)
	if err != nil {
		return nil, info, h, n.done(ctx, c, err)
	}
	b := &nodeBody{ReadCloser: body, done: func(err error) { n.done(ctx, c, err) }}
	if len(n.nodes) > 1 {
		b.name = func(err error) error {
			if nodeFault(ctx, err) {
				return &EndpointError{Endpoint: c.Endpoint, Err: err}
			}
			return err
		}
	}
	return b, info, h, nil
}

// nodeBody is a response body that tells its node's Nodes how it ended when closed.
type nodeBody struct {
	io.ReadCloser
	done func(err error)
	name func(err error) error // nil: one node, nothing to name
	err  error                 // the first error of a read, io.EOF aside
	once sync.Once
}

func (b *nodeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		if b.err == nil {
			b.err = err
		}
		if b.name != nil {
			err = b.name(err)
		}
	}
	return n, err
}

func (b *nodeBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.done(b.err) })
	return err
}

func (n *Nodes) StatObject(ctx context.Context, bucket, object string, opts minio.StatObjectOptions) (minio.ObjectInfo, error) {
	return call(n, ctx, func(s3 S3) (minio.ObjectInfo, error) { return s3.StatObject(ctx, bucket, object, opts) })
}

func (n *Nodes) RemoveObject(ctx context.Context, bucket, object string, opts minio.RemoveObjectOptions) error {
	_, err := call(n, ctx, func(s3 S3) (struct{}, error) { return struct{}{}, s3.RemoveObject(ctx, bucket, object, opts) })
	return err
}

func (n *Nodes) GetObjectAttributes(ctx context.Context, bucket, object string, opts minio.ObjectAttributesOptions) (*minio.ObjectAttributes, error) {
	return call(n, ctx, func(s3 S3) (*minio.ObjectAttributes, error) {
		return s3.GetObjectAttributes(ctx, bucket, object, opts)
	})
}

func (n *Nodes) BucketExists(ctx context.Context, bucket string) (bool, error) {
	return call(n, ctx, func(s3 S3) (bool, error) { return s3.BucketExists(ctx, bucket) })
}

func (n *Nodes) ListBuckets(ctx context.Context) ([]minio.BucketInfo, error) {
	return call(n, ctx, func(s3 S3) ([]minio.BucketInfo, error) { return s3.ListBuckets(ctx) })
}

// ListObjects lists through one node, kept in flight until the listing ends; a listing
// that fails is taken up again (by the store layer) on the node picked then.
func (n *Nodes) ListObjects(ctx context.Context, bucket string, opts minio.ListObjectsOptions) <-chan minio.ObjectInfo {
	c := n.pick()
	out := make(chan minio.ObjectInfo)
	if c.lister == nil {
		err := fmt.Errorf("the store %T of endpoint %s cannot list objects", c.S3, c.Endpoint)
		go func() {
			defer close(out)
			n.done(ctx, c, err)
			select {
			case out <- minio.ObjectInfo{Err: err}:
			case <-ctx.Done():
			}
		}()
		return out
	}
	in := c.lister.ListObjects(ctx, bucket, opts)
	go func() {
		defer close(out)
		var failed error
		for o := range in { // the lister closes in when ctx ends
			if o.Err != nil && failed == nil {
				failed = o.Err
				o.Err = n.done(ctx, c, o.Err)
				c = nil
			}
			select {
			case out <- o:
			case <-ctx.Done():
			}
		}
		if c != nil {
			n.done(ctx, c, nil)
		}
	}()
	return out
}

var (
	_ S3     = (*Nodes)(nil)
	_ Lister = (*Nodes)(nil)
)
