//! Volumes on a real engine. `destroy` keeps every volume. `destroy --volumes` deletes the
//! project's named volumes and also the anonymous volumes (`"/path"` mounts) that its
//! containers made. The engine gives anonymous volumes no label, so they go with their
//! container (`docker rm -v`) or not at all. A replacement takes its predecessor's anonymous
//! volumes over (as Compose does); mounted by name, those are recorded on the container
//! (`io.scale.carried-volumes`) and `destroy --volumes` removes them by that record.

mod common;

use common::{DockerTest, Scale, TEST_IMAGE, inspect, project_resources, write_blueprint};

/// The anonymous volume mounted at `target` in `container`.
fn anonymous_volume(container: &str, target: &str) -> String {
    let c = inspect(container);
    let mounts = c["Mounts"].as_array().unwrap_or_else(|| panic!("no Mounts in {c}"));
    let mount = mounts
        .iter()
        .find(|m| m["Destination"] == target)
        .unwrap_or_else(|| panic!("{container} mounts nothing at {target}: {mounts:?}"));
    assert_eq!(mount["Type"], "volume", "{mount}");
    mount["Name"].as_str().expect("a volume name").to_string()
}

fn volume_exists(t: &DockerTest, name: &str) -> bool {
    t.docker(&["volume", "ls", "-q"]).lines().any(|v| v == name)
}

#[test]
fn destroy_keeps_volumes_and_destroy_volumes_deletes_named_and_anonymous_ones() {
    let Some(t) = DockerTest::start("volumes") else { return };
    let p = t.project().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "name: {p}\nvolumes:\n  data: {{}}\nservices:\n  box:\n    image: {TEST_IMAGE}\n    \
         command: [sleep, infinity]\n    stop_grace_period: 1s\n    volumes: [\"data:/data\", \"/scratch\"]\n"
    );
    let file = write_blueprint(dir.path(), &yaml);
    let container = format!("{p}-box-1");
    let named = format!("{p}_data");

    // Plain destroy: nothing is deleted, the anonymous volume included.
    Scale::new(&["apply", "--yes", &file]).run().success();
    let first = anonymous_volume(&container, "/scratch");
    t.remove_volume_on_drop(&first);
    Scale::new(&["destroy", "--yes", &file]).run().success();
    assert!(volume_exists(&t, &first), "plain destroy deleted the anonymous volume {first}");
    assert_eq!(project_resources("volume", &p), vec![named.clone()]);

    // destroy --volumes: the named volume and the running container's anonymous one go.
    Scale::new(&["apply", "--yes", &file]).run().success();
    let second = anonymous_volume(&container, "/scratch");
    t.remove_volume_on_drop(&second);
    assert_ne!(first, second, "a new container gets a new anonymous volume");
    Scale::new(&["destroy", "--yes", "--volumes", &file]).run().success();
    assert!(!volume_exists(&t, &second), "destroy --volumes left the anonymous volume {second}");
    assert_eq!(project_resources("volume", &p), Vec::<String>::new());
    // The first one belonged to a container that is long gone: nothing ties it to the
    // project any more, so scale cannot (and must not) find it.
    assert!(volume_exists(&t, &first));
}

#[test]
fn an_anonymous_volume_carries_over_to_a_replacement_and_destroy_volumes_removes_it() {
    let Some(t) = DockerTest::start("volumes-carry") else { return };
    let p = t.project().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = |greeting: &str| {
        format!(
            "name: {p}\nservices:\n  box:\n    image: {TEST_IMAGE}\n    command: [sleep, infinity]\n    \
             stop_grace_period: 1s\n    environment: {{ GREETING: {greeting} }}\n    volumes: [\"/scratch\"]\n"
        )
    };
    let container = format!("{p}-box-1");
    let file = write_blueprint(dir.path(), &yaml("hello"));
    Scale::new(&["apply", "--yes", &file]).run().success();
    let volume = anonymous_volume(&container, "/scratch");
    t.remove_volume_on_drop(&volume);
    t.docker(&["exec", &container, "sh", "-c", "echo kept > /scratch/file"]);
    let before = inspect(&container)["Id"].as_str().expect("an ID").to_string();

    let file = write_blueprint(dir.path(), &yaml("hi"));
    let out = Scale::new(&["apply", "--yes", &file]).run().success().all();
    assert!(out.contains("carrying the anonymous volume(s) of /scratch over"), "{out}");
    assert_ne!(inspect(&container)["Id"].as_str(), Some(before.as_str()), "the container was replaced:\n{out}");
    assert_eq!(anonymous_volume(&container, "/scratch"), volume, "the replacement mounts the same volume");
    assert_eq!(t.docker(&["exec", &container, "cat", "/scratch/file"]).trim(), "kept");

    Scale::new(&["destroy", "--yes", "--volumes", &file]).run().success();
    assert!(!volume_exists(&t, &volume), "destroy --volumes left the carried-over volume {volume}");
}
