"""The signaling service: WebRTC signaling between workers."""
