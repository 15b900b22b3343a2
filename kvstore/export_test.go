package kvstore

// ReplyError decodes a raw reply of RouteOp and returns the error a Client
// would map it to (nil for an answer).
func ReplyError(raw []byte) error {
	r, err := decodeReply(raw)
	if err != nil {
		return err
	}
	if r.Status == statusBadRequest {
		return badErrors[r.Code]
	}
	return nil
}
