-- Reads one room, consistently: 'null' if there is none.
-- ARGV: 2 room id, 3 'none' (counts only) or 'all' (with its participants)
return room_json(ARGV[2], ARGV[3]) or 'null'
