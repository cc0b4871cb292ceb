package livestore

// SetMinRowPins sets how many pinned live queries a table of s needs before
// commits of a store without sync capture its changed rows (keys.go), so
// that tests reach invalidation by row with few queries. Call it before
// subscribing.
func SetMinRowPins(s *Store, n int) {
	s.graph.mu.Lock()
	defer s.graph.mu.Unlock()
	s.graph.minRowPins = n
	s.graph.publishPinTables()
}
