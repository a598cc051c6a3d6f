// Package failpoint lets tests act at named moments of a transfer ("created",
// "part-acked", "part-journaled", "before-complete", "completed"; a stream's
// "spill-created" and "spill-closed" for a part's temporary file): to cancel it, change
// its source, or kill the process there. The hook travels in the context, so it reaches
// only the transfers run under that context and the public API has no test plumbing.
package failpoint

import "context"

type hookKey struct{}

// WithHook returns a context whose transfers call hook with the name of each failpoint
// they reach. hook may be called from several goroutines at once.
func WithHook(ctx context.Context, hook func(name string)) context.Context {
	return context.WithValue(ctx, hookKey{}, hook)
}

// Hit calls the hook of ctx, if any, with name.
func Hit(ctx context.Context, name string) {
	if hook, _ := ctx.Value(hookKey{}).(func(string)); hook != nil {
		hook(name)
	}
}
