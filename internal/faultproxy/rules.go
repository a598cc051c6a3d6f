package faultproxy

// First combines rules: a request gets the Action of the first rule that returns a
// non-zero one.
func First(rules ...Rule) Rule {
	return func(r *Request) Action {
		for _, rule := range rules {
			if a := rule(r); a != (Action{}) {
				return a
			}
		}
		return Action{}
	}
}

// When gives a to the requests match accepts, on their first attempts tries (each retry
// is a new attempt, see Request.Attempt); attempts <= 0 means on every try.
func When(match func(*Request) bool, attempts int, a Action) Rule {
	return func(r *Request) Action {
		if match(r) && (attempts <= 0 || r.Attempt <= attempts) {
			return a
		}
		return Action{}
	}
}

// IsOp matches the requests of the given operations.
func IsOp(ops ...Op) func(*Request) bool {
	return func(r *Request) bool {
		for _, op := range ops {
			if r.Op == op {
				return true
			}
		}
		return false
	}
}

// Every gives a to every request.
func Every(a Action) Rule { return func(*Request) Action { return a } }
