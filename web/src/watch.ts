// The /watch page: a placeholder until the compositor's HLS broadcast exists. Shows the room of `?room=`.

import { ROOM_RE } from './protocol';
import { $, queryParams } from './ui';

const room = (queryParams().get('room') ?? '').trim();
if (ROOM_RE.test(room)) {
  $('watch-room').textContent = `room “${room}”`;
  $('header-room-name').textContent = room;
  $('header-room').hidden = false;
  ($('to-stage') as HTMLAnchorElement).href = `/stream?room=${encodeURIComponent(room)}`;
  document.title = `Rostrum · Watch ${room}`;
} else if (room) {
  $('watch-room').textContent = 'an invalid room';
  $('watch-text').textContent = 'A room name is 1–64 letters, digits, “-” or “_”. Check the link you were given.';
}
