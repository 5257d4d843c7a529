"""The demo job: handwritten digits trained across worker processes through the grid."""
