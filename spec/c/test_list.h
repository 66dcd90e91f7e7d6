/* Every C unit test, once (run_tests.c declares and runs them in this order). */
#ifndef LF_TEST_LIST_H
#define LF_TEST_LIST_H

#define TEST_LIST(XX)                                                                    \
  XX(state_class_table)                                                                  \
  XX(state_masks_follow_the_parents)                                                     \
  XX(state_values)                                                                       \
  XX(signal_table)                                                                       \
  XX(graph_chain_keeps_the_added_order)                                                  \
  XX(graph_edge_back_names_the_cycle)                                                    \
  XX(graph_self_edge_is_a_cycle_of_one)                                                  \
  XX(graph_backward_edges_reorder)                                                       \
  XX(graph_random_against_brute_force)                                                   \
  XX(trigger_names_from_the_list)                                                        \
  XX(trigger_all_and_any)                                                                \
  XX(trigger_manual_only_and_not_all_skipped)                                            \
  XX(trigger_some_with_bounds)                                                           \
  XX(acmatch_finds_every_occurrence)                                                     \
  XX(acmatch_stops_when_asked)                                                           \
  XX(acmatch_random_against_brute_force)                                                 \
  XX(redact_hides_every_form)                                                            \
  XX(redact_sees_secrets_added_after_a_redaction)                                        \
  XX(redact_merges_overlaps_and_refuses_short_values)                                    \
  XX(redact_forms_are_each_hidden)                                                       \
  XX(json_text_rewrites_compactly)                                                       \
  XX(json_text_names_the_byte_at_fault)                                                  \
  XX(json_text_writes_strings_as_utf8_json)                                              \
  XX(json_text_number_grammar)                                                           \
  XX(heap_pops_in_key_order)                                                             \
  XX(heap_interleaved_pushes_and_pops)                                                   \
  XX(ready_set_gives_the_smallest_rank)                                                  \
  XX(ready_set_random_against_a_sort)                                                    \
  XX(buf_decimal_writes_digits_before_the_end)                                           \
  XX(clock_formats_times)                                                                \
  XX(buf_grows_and_keeps_its_bytes)                                                      \
  XX(buf_reports_a_size_it_cannot_have)                                                  \
  XX(api_handler_error_is_per_thread)                                                    \
  XX(api_table_matches_the_linked_functions)                                             \
  XX(retry_delay_grows_by_the_backoff_up_to_the_cap)                                     \
  XX(retry_jitter_spreads_within_its_bounds_and_under_the_cap)                           \
  XX(retry_check_says_why_a_failure_is_not_retried)                                      \
  XX(deadline_durations_read_like_a_person_writes_them)                                  \
  XX(engine_run_file_waits_for_async_deliveries)

#endif
