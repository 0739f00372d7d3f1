"""Recordings to transcripts with offline Vosk."""
