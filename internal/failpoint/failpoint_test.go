package failpoint

import (
	"context"
	"testing"
)

func TestHit(t *testing.T) {
	Hit(context.Background(), "created") // no hook: nothing happens
	var got []string
	ctx := WithHook(context.Background(), func(name string) { got = append(got, name) })
	ctx, cancel := context.WithCancel(ctx) // a derived context keeps the hook
	defer cancel()
	Hit(ctx, "created")
	Hit(context.WithoutCancel(ctx), "completed")
	if len(got) != 2 || got[0] != "created" || got[1] != "completed" {
		t.Fatalf("hook saw %q", got)
	}
}
