package payload

// Error lets a source reject one read with a reason (a line too long, say) and go on: the gate treats a Reason
// returned as an error as a rejection of that read, not as a fault of the source.
func (r Reason) Error() string { return r.Code + ": " + r.Message }
