// LastEntry<Map>: a one-entry cache in front of a node-based map (std::map),
// for lookups that mostly name the entry of the lookup before: the per-message
// path looks up its peer, node and endpoint queues by name for every message,
// and a string-keyed tree lookup cost 100-200 instructions each (callgrind),
// where comparing one key costs about 20.
//
// The cache holds a pointer to the map's entry: call Forget() before erasing
// any entry of the map (std::map entries otherwise stay put).
#pragma once

namespace axon {

template <typename Map>
class LastEntry {
 public:
  using Key = typename Map::key_type;
  using Value = typename Map::mapped_type;

  // map[key] if it is there, else null; the entry found last is tried first.
  Value* Find(Map& map, const Key& key) {
    if (last_ != nullptr && last_->first == key) return &last_->second;
    auto it = map.find(key);
    if (it == map.end()) return nullptr;
    last_ = &*it;
    return &it->second;
  }

  // map[key], added (value-initialized) when it is not there; `*added` says
  // whether it was.
  Value& FindOrAdd(Map& map, const Key& key, bool* added = nullptr) {
    if (added != nullptr) *added = false;
    if (last_ != nullptr && last_->first == key) return last_->second;
    auto [it, inserted] = map.try_emplace(key);
    if (added != nullptr) *added = inserted;
    last_ = &*it;
    return it->second;
  }

  void Forget() { last_ = nullptr; }

 private:
  typename Map::value_type* last_ = nullptr;
};

}  // namespace axon
