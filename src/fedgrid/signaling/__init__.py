"""WebRTC signaling between workers: rooms per cycle, relayed offers and answers."""
