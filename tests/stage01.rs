//! Stage 1 of the ladder end to end on a real engine: scale builds the demo image, runs it,
//! and the book's user 12 comes back over HTTP; data survives a restart; a second apply is
//! a no-op; destroy --volumes leaves nothing. The first run builds the image (about a
//! minute); later runs hit the engine's build cache.

mod common;

use std::path::Path;

use common::{DockerTest, HttpResponse, Scale, http, http_get_ok, project_containers, remove_built_images};

/// The chapter's user 12, byte for byte.
const USER_12: &str = r#"{"id":12,"firstName":"John","lastName":"Smith","address":{"streetAddress":"21 2nd Street","city":"New York","state":"NY","postalCode":10021},"phoneNumbers":["212 555-1234","646 555-4567"]}"#;

fn repo_file(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Removes the images scale built for the project when the test ends, however it ends.
struct BuiltImages<'a>(&'a str);

impl Drop for BuiltImages<'_> {
    fn drop(&mut self) {
        remove_built_images(self.0);
    }
}

/// The host port of the project's first endpoint, from `status --output json`.
fn endpoint_port(file: &str) -> (u16, String) {
    let status = Scale::new(&["status", "--output", "json", file]).run().success().json();
    let endpoint = &status["endpoints"][0];
    let port = endpoint["host_port"].as_u64().unwrap_or_else(|| panic!("no endpoint in {status:#}"));
    let container = endpoint["container"].as_str().expect("endpoint container").to_string();
    (u16::try_from(port).expect("a port"), container)
}

fn assert_user_12(response: &HttpResponse, container: &str) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, USER_12, "{response:?}");
    assert_eq!(response.header("X-Served-By"), Some(container), "{response:?}");
}

#[test]
fn stage01_single_server() {
    let Some(t) = DockerTest::start("stage01") else { return };
    let p = t.project();
    let _images = BuiltImages(p);
    let original = std::fs::read_to_string(repo_file("blueprints/01-single-server.yaml")).expect("stage 1 blueprint");
    let context = repo_file("blueprints/images/web");
    let mut yaml = original.clone();
    for (from, to) in [
        ("name: shop\n", format!("name: {p}\n")),
        ("build: images/web\n", format!("build: {}\n", context.display())),
        (r#"ports: ["8080:8000"]"#, r#"ports: ["8000"]"#.to_string()),
    ] {
        assert!(yaml.contains(from), "blueprints/01-single-server.yaml no longer contains {from:?}:\n{original}");
        yaml = yaml.replace(from, &to);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::write_blueprint(dir.path(), &yaml);

    Scale::new(&["apply", &file]).run().success();
    let (port, container) = endpoint_port(&file);
    assert_eq!(container, format!("{p}-web-1"));

    let user = http_get_ok(port, "/users/12", 20);
    assert_user_12(&user, &container);
    assert_eq!(user.header("X-Db-Role"), Some("embedded"), "{user:?}");

    let created = http(port, "POST", "/users", Some(r#"{"firstName":"Ada"}"#)).expect("POST /users");
    assert_eq!(created.status, 201, "{created:?}");
    let ada: serde_json::Value = serde_json::from_str(&created.body).expect("POST answers JSON");
    let id = ada["id"].as_u64().unwrap_or_else(|| panic!("no id in {ada}"));
    let path = format!("/users/{id}");
    let fetched = http_get_ok(port, &path, 1);
    let fetched_json: serde_json::Value = serde_json::from_str(&fetched.body).expect("JSON");
    assert_eq!(fetched_json["firstName"], "Ada", "{fetched:?}");
    assert_eq!(http_get_ok(port, "/healthz", 1).status, 200);

    // The user lives on the volume, not in the container.
    t.docker(&["restart", "-t", "5", &container]);
    let (port, _) = endpoint_port(&file);
    let again = http_get_ok(port, &path, 40);
    assert_eq!(again.body, fetched.body, "the user survived a restart");

    let second = Scale::new(&["apply", &file]).run();
    second.success();
    assert!(second.stdout.contains("No changes"), "{}", second.stdout);

    Scale::new(&["destroy", "--yes", "--volumes", &file]).run().success();
    assert!(project_containers(p).is_empty());
    assert_eq!(common::project_resources("network", p), Vec::<String>::new());
    assert_eq!(common::project_resources("volume", p), Vec::<String>::new());
}

/// Whether something already serves 127.0.0.1:8080 (a process, or a published container
/// port the engine forwards without a listening socket).
fn port_8080_taken() -> Option<String> {
    if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", 8080)) {
        return Some(format!("binding 127.0.0.1:8080 fails: {e}"));
    }
    let publishers = common::docker(&["ps", "--filter", "publish=8080", "--format", "{{.Names}}"]).unwrap_or_default();
    (!publishers.is_empty()).then(|| format!("container(s) {publishers} publish port 8080"))
}

/// The README's promise: the stage 1 file, unchanged, answers on localhost:8080.
#[test]
fn readme_stage01_on_port_8080() {
    if !common::docker_or_skip("readme_stage01_on_port_8080") {
        return;
    }
    if let Some(why) = port_8080_taken() {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             SKIPPED readme_stage01_on_port_8080: port 8080 is in use ({why}).\n\
             The README's `curl localhost:8080/users/12` was NOT checked; free the port to run it.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return;
    }
    let t = DockerTest::new("readme");
    let p = t.project();
    let _images = BuiltImages(p);
    let file = repo_file("blueprints/01-single-server.yaml");
    let file = file.to_str().expect("UTF-8 path");

    Scale::new(&["apply", "-p", p, file]).run().success();
    let user = http_get_ok(8080, "/users/12", 20);
    assert_user_12(&user, &format!("{p}-web-1"));

    Scale::new(&["destroy", "--yes", "--volumes", "-p", p]).run().success();
    assert!(project_containers(p).is_empty());
    assert_eq!(common::project_resources("volume", p), Vec::<String>::new());
}
